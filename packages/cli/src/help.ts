import type { Command } from 'commander';

/** Appends an "Examples:" section to a command's `--help`. */
export function examples(command: Command, lines: readonly string[]): Command {
  return command.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}

/** A usage error found in an action (e.g. options that need each other): exit 2, like a parse error. */
export function usageError(command: Command, message: string): never {
  command.error(`error: ${message}`, { exitCode: 2, code: 'flotilla.usage' });
}
