/** Runs a short command (post-install, health probe) with a timeout and a bounded output tail. */
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Last bytes of stdout and stderr together. */
  output: string;
  /** Set when the command could not start. */
  spawnError: string | null;
}

const TAIL_BYTES = 4096;

export function runCommand(
  argv: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number; signal?: AbortSignal },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const [file, ...args] = argv as [string, ...string[]];
    let output = '';
    let timedOut = false;
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const keep = (piece: Buffer) => {
      output = (output + piece.toString('utf8')).slice(-TAIL_BYTES);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const kill = () => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs);
    options.signal?.addEventListener('abort', kill, { once: true });
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, timedOut: false, output, spawnError: e.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', kill);
      resolve({ code, signal, timedOut, output, spawnError: null });
    });
  });
}

/** A one-line description of a failed command for error messages. */
export function describeFailure(argv: readonly string[], result: CommandResult): string {
  const what = argv.join(' ').slice(0, 200);
  if (result.spawnError !== null) return `${what}: cannot start (${result.spawnError})`;
  if (result.timedOut) return `${what}: timed out`;
  const how = result.signal !== null ? `killed by ${result.signal}` : `exit code ${String(result.code)}`;
  const tail = result.output.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
  return `${what}: ${how}${tail ? ` (${tail})` : ''}`;
}
