/** An in-memory CliIo for running `runCli` in-process: captured output, scripted stdin, fake signals. */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { CliIo } from '../../src/io.js';
import { runCli } from '../../src/program.js';

export class Capture {
  text = '';
  constructor(readonly isTTY = false) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

export interface MemoryIo extends CliIo {
  stdout: Capture;
  stderr: Capture;
  signals: EventEmitter & CliIo['signals'];
  exits: number[];
}

export function memoryIo(
  options: { env?: Record<string, string | undefined>; stdin?: string; tty?: boolean; cwd?: string } = {},
): MemoryIo {
  const exits: number[] = [];
  return {
    stdout: new Capture(options.tty),
    stderr: new Capture(options.tty),
    stdin: Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]),
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
    hostname: 'test-host',
    signals: new EventEmitter(),
    exit: (code) => void exits.push(code),
    exits,
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one CLI invocation in-process with the given environment. */
export async function cli(
  argv: string[],
  options: { env?: Record<string, string | undefined>; stdin?: string; tty?: boolean } = {},
): Promise<CliResult> {
  const io = memoryIo(options);
  const code = await runCli(argv, io);
  return { code, stdout: io.stdout.text, stderr: io.stderr.text };
}

/** Parses a command's JSON stdout, failing the test with its stderr when it is not JSON. */
export function json<T>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${result.code}): ${result.stdout}\nstderr: ${result.stderr}`);
  }
}
