/**
 * Supervises one app process: restart policy with exponential backoff, stop with SIGTERM then
 * SIGKILL after a timeout (to the whole process group), stdout/stderr to rotated logs, and a pid
 * file so that a restarted agent can stop what a killed one left running.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AppProcessStatus, RestartPolicy } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { RotatingLog } from './rotating-log.js';

export interface SupervisorOptions {
  argv: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  policy: RestartPolicy;
  initialDelayMs: number;
  maxDelayMs: number;
  stopTimeoutMs: number;
  /** `<appDir>/process.pid` */
  pidFile: string;
  stdoutLog: RotatingLog;
  stderrLog: RotatingLog;
  logger: Logger;
  /** Called when the process starts, exits or is restarted on its own (not when stopped). */
  onChange?: () => void;
}

/** A run that lasted this long resets the backoff. */
const STABLE_RUN_MS = 10_000;

export class Supervisor {
  private child: ChildProcess | null = null;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private consecutiveFailures = 0;
  /** Exits since start() (each one a crash or a normal end the policy restarts or not). */
  exits = 0;
  /** Spawns after the first since start(): the restarts the policy made. */
  restarts = 0;
  lastExit: { code: number | null; signal: NodeJS.Signals | null; at: Date } | null = null;
  spawnError: string | null = null;
  private state: AppProcessStatus['state'] = 'stopped';
  private since = new Date();

  constructor(private readonly options: SupervisorOptions) {}

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The running process's pid (null when none runs). */
  get pid(): number | null {
    return this.running ? (this.child?.pid ?? null) : null;
  }

  /** Delay before the next restart: initial × 2^failures, capped. */
  nextDelayMs(): number {
    return Math.min(
      this.options.maxDelayMs,
      this.options.initialDelayMs * 2 ** Math.min(this.consecutiveFailures, 30),
    );
  }

  start(): void {
    this.stopping = false;
    this.spawnOnce();
  }

  /** How the process stands: running, waiting to restart, or stopped (policy), with its history. */
  status(): AppProcessStatus {
    return {
      state: this.state,
      since: this.since.toISOString(),
      restarts: this.restarts,
      lastExit:
        this.lastExit === null
          ? null
          : { code: this.lastExit.code, signal: this.lastExit.signal, at: this.lastExit.at.toISOString() },
    };
  }

  private enter(state: AppProcessStatus['state']): void {
    this.state = state;
    this.since = new Date();
    this.options.onChange?.();
  }

  private spawnOnce(): void {
    if (this.timer !== null) this.restarts += 1;
    this.timer = null;
    const [file, ...args] = this.options.argv as [string, ...string[]];
    const child = spawn(file, args, {
      cwd: this.options.cwd,
      env: this.options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    this.startedAt = performance.now();
    child.stdout?.on('data', (b: Buffer) => this.options.stdoutLog.write(b));
    child.stderr?.on('data', (b: Buffer) => this.options.stderrLog.write(b));
    child.once('spawn', () => {
      this.spawnError = null;
      if (child.pid !== undefined) writePidFile(this.options.pidFile, child.pid);
      if (this.child === child && !this.stopping) this.enter('running');
    });
    child.once('error', (e) => {
      this.spawnError = e.message;
      this.options.logger.error({ err: e }, 'app process could not start');
    });
    child.once('close', (code, signal) => this.onExit(child, code, signal));
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.exits += 1;
    this.lastExit = { code, signal, at: new Date() };
    if (this.stopping) return;
    const failed = code !== 0 || this.spawnError !== null;
    if (performance.now() - this.startedAt >= STABLE_RUN_MS) this.consecutiveFailures = 0;
    const restart = this.options.policy === 'always' || (this.options.policy === 'on-failure' && failed);
    this.options.logger.warn({ code, signal, restart }, 'app process exited');
    if (!restart) {
      this.enter('stopped');
      return;
    }
    const delayMs = this.nextDelayMs();
    this.consecutiveFailures += 1;
    this.timer = setTimeout(() => this.spawnOnce(), delayMs);
    this.enter('restarting');
  }

  /** SIGTERM to the process group, SIGKILL after `stopTimeoutMs`; resolves once it is gone. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const child = this.child;
    if (child && child.pid !== undefined && this.running) {
      const gone = new Promise<void>((resolve) => child.once('close', () => resolve()));
      signalGroup(child.pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(child.pid as number, 'SIGKILL'), this.options.stopTimeoutMs);
      await gone;
      clearTimeout(timer);
    }
    rmSync(this.options.pidFile, { force: true });
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** The pid file holds the pid and its kernel start time, so a reused pid is never killed. */
function writePidFile(path: string, pid: number): void {
  writeFileSync(path, `${pid} ${startTimeOf(pid) ?? ''}\n`);
}

function startTimeOf(pid: number): string | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = fields.slice(fields.lastIndexOf(')') + 2).split(' ');
    // A zombie is gone for our purposes (its parent, not us, must reap it).
    if (rest[0] === 'Z') return null;
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

/** Stops a process group left by an earlier agent process (SIGTERM, then SIGKILL after `timeoutMs`). */
export async function stopLeftover(pidFile: string, timeoutMs: number): Promise<boolean> {
  let text: string;
  try {
    text = readFileSync(pidFile, 'utf8');
  } catch {
    return false;
  }
  const [pidText, started] = text.trim().split(' ');
  const pid = Number(pidText);
  const alive = () =>
    Number.isInteger(pid) && pid > 1 && startTimeOf(pid) !== null && startTimeOf(pid) === (started ?? null);
  let stopped = false;
  if (alive()) {
    signalGroup(pid, 'SIGTERM');
    const deadline = performance.now() + timeoutMs;
    while (alive() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (alive()) signalGroup(pid, 'SIGKILL');
    while (alive()) await new Promise((r) => setTimeout(r, 20));
    stopped = true;
  }
  rmSync(pidFile, { force: true });
  return stopped;
}
