/**
 * Everything the CLI touches in its surroundings, injectable so that tests run `runCli` in-process
 * with captured output, a private environment and a scripted stdin.
 */
import { hostname } from 'node:os';

/** Where a command writes text: anything with a `write(string)` (process streams, test buffers). */
export interface TextSink {
  write(chunk: string): unknown;
  /** True when a human terminal is attached: enables colors and pretty logs. */
  readonly isTTY?: boolean;
}

/** The process signals the daemons react to; `process` satisfies it. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
  /** Read fully by `--password-stdin`. */
  stdin: AsyncIterable<Buffer | string>;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  hostname: string;
  signals: SignalSource;
  /** Ends the process; only daemons call it (a second signal, a stop that outlasts its timeout). */
  exit: (code: number) => void;
}

/** The real process's io, used by the `flotilla` executable. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    hostname: hostname(),
    signals: process,
    exit: (code) => process.exit(code),
  };
}

/** Commander's output settings for a program on `io`: plain text, no colors (both CLI programs). */
export function commanderOutput(io: Pick<CliIo, 'stdout' | 'stderr'>): {
  writeOut: (s: string) => void;
  writeErr: (s: string) => void;
  getOutHasColors: () => boolean;
  getErrHasColors: () => boolean;
} {
  return {
    writeOut: (s) => io.stdout.write(s),
    writeErr: (s) => io.stderr.write(s),
    getOutHasColors: () => false,
    getErrHasColors: () => false,
  };
}
