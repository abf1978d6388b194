/**
 * Keeps one child process running for `flotilla up`: forwards its output line by line with a
 * prefix, restarts it with exponential backoff when it dies, and stops it with SIGTERM (SIGKILL
 * after a timeout).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { TextSink } from '../io.js';

export interface SupervisedProcessOptions {
  command: string;
  args: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Prepended to every forwarded line, e.g. `[agent] `. */
  prefix: string;
  stdout: TextSink;
  stderr: TextSink;
  log: (message: string) => void;
  /** First restart delay; doubles per consecutive failure up to maxBackoffMs. Default 1000. */
  initialBackoffMs?: number;
  /** Default 30000. */
  maxBackoffMs?: number;
  /** A run at least this long resets the backoff. Default 60000. */
  stableAfterMs?: number;
  /** SIGKILL when SIGTERM has not ended the child within this time. Default 10000. */
  killAfterMs?: number;
}

export class SupervisedProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private restartTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private stopping = false;

  constructor(private readonly options: SupervisedProcessOptions) {}

  /** The running child's pid, if any. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    this.stopping = false;
    this.spawnOnce();
  }

  /** Stops the child (and any pending restart); resolves once it has exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return this.exited;
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), this.options.killAfterMs ?? 10_000);
    await this.exited;
    clearTimeout(kill);
  }

  private spawnOnce(): void {
    const { command, args, env, prefix } = this.options;
    const startedAt = Date.now();
    // Its own process group: a terminal's Ctrl-C reaches only the supervisor, which then stops the
    // child once, gracefully (a second signal would make the child exit at once).
    const child = spawn(command, [...args], {
      env: { ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    // Should the supervisor itself exit without stopping the child, the child does not outlive it.
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    const streamsClosed = Promise.all([
      forwardLines(child.stdout, prefix, this.options.stdout),
      forwardLines(child.stderr, prefix, this.options.stderr),
    ]);
    this.exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (why: string) => {
        if (done) return;
        done = true;
        void streamsClosed.then(() => {
          resolve();
          this.onExit(why, Date.now() - startedAt);
        });
      };
      child.once('error', (error) => finish(`could not start: ${error.message}`));
      child.once('exit', (code, signal) =>
        finish(signal ? `killed by ${signal}` : `exited with code ${code}`),
      );
    });
    if (child.pid !== undefined) this.options.log(`started (pid ${child.pid})`);
  }

  private onExit(why: string, ranForMs: number): void {
    if (this.stopping) {
      this.options.log(`stopped (${why})`);
      return;
    }
    this.failures = ranForMs >= (this.options.stableAfterMs ?? 60_000) ? 1 : this.failures + 1;
    const initial = this.options.initialBackoffMs ?? 1000;
    const delay = Math.min(this.options.maxBackoffMs ?? 30_000, initial * 2 ** (this.failures - 1));
    this.options.log(`${why}; restarting in ${Math.round(delay / 100) / 10}s`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.stopping) this.spawnOnce();
    }, delay);
  }
}

function forwardLines(stream: Readable | null, prefix: string, sink: TextSink): Promise<void> {
  if (!stream) return Promise.resolve();
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  lines.on('line', (line) => void sink.write(`${prefix}${line}\n`));
  return new Promise((resolve) => lines.once('close', resolve));
}

const HUGETLB = 'glibc.malloc.hugetlb=1';

/**
 * The environment the agent runs best in, as its systemd unit sets it: glibc's malloc gives large
 * buffers transparent huge pages (docs/agent.md "Memory"). An operator's own setting is kept.
 */
export function agentEnv(
  env: Readonly<Record<string, string | undefined>>,
): Record<string, string | undefined> {
  const tunables = env.GLIBC_TUNABLES;
  if (tunables?.includes('glibc.malloc.hugetlb')) return { ...env };
  return { ...env, GLIBC_TUNABLES: tunables ? `${tunables}:${HUGETLB}` : HUGETLB };
}
