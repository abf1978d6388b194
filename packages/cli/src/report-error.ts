/** How a failed command is told to the user: commander's own message, a FLT_ code, or FLT_INTERNAL. */
import { CommanderError } from 'commander';
import { isFlotillaError } from '@flotilla/protocol';
import { ExitCode } from './exit-codes.js';
import type { CliIo } from './io.js';

export function reportError(error: unknown, io: CliIo): number {
  if (error instanceof CommanderError) {
    // commander has already printed its message (and help) to stderr.
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  if (isFlotillaError(error)) {
    io.stderr.write(`error [${error.code}]: ${error.message}\n`);
    // Some messages already list their problems; print only what they leave out.
    for (const problem of problemsOf(error.details).filter((p) => !error.message.includes(p))) {
      io.stderr.write(`  - ${problem}\n`);
    }
    return ExitCode.failure;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.stderr.write(`error [FLT_INTERNAL]: ${message}\n`);
  return ExitCode.failure;
}

function problemsOf(details: unknown): string[] {
  if (details && typeof details === 'object' && 'problems' in details) {
    const { problems } = details;
    if (Array.isArray(problems)) return problems.map(String);
  }
  return [];
}
