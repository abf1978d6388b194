/**
 * The loader (docs/agent-lifecycle.md): owns the install directory, runs the `current` agent
 * release as its child, and switches to a new release when the agent's health probe hands one
 * over. The new agent has `healthWindowMs` to reach the server (it writes the health marker when it
 * does); otherwise the loader switches back, records why, and starts the previous agent, whose
 * update engine then reports the rollback with that reason. Every step is journaled in
 * `loader-state.json` before it runs, and each switch is a symlink rename, so a SIGKILL or a power
 * cut at any point leaves a state `recover()` completes.
 */
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { sleep } from '../util/sleep.js';
import { killStaleAgent, spawnAgent } from './child.js';
import type { AgentChild } from './child.js';
import {
  EMPTY_STATE,
  handoverDir,
  InstallLayout,
  POINTER_FILE,
  readJson,
  REQUEST_FILE,
  switchLink,
  writeJson,
} from './layout.js';
import type { HandoverRequest, LoaderState, Trial } from './layout.js';

export interface LoaderOptions {
  installDir: string;
  /** The agent's --data-dir (the handover files live in its flotilla-agent app data). */
  agentDataDir: string;
  /** Arguments for `bin/flotilla-agent` of every release, e.g. ['agent', '--data-dir', …]. */
  agentArgs: readonly string[];
  /** How long a new agent has to reach the server (default 120 s). */
  healthWindowMs?: number;
  /** How often the loader looks for a handover and at its child (default 500 ms). */
  checkIntervalMs?: number;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  /** The file this loader runs from; when a committed release brings a different one, the loader restarts. */
  selfFile?: string;
  /**
   * Timer mode (`flotilla-agent loader --once`, as mig-loader runs from cron): the agent runs one
   * update pass (`agentArgs` carry its `--once`) and exits; a handover it asks for is carried out
   * as usual; the loader ends when the agent ends while no switch is in flight.
   */
  once?: boolean;
}

/**
 * How `run` ended: stopped by its signal, exits for the launcher to start the new loader, or (once
 * mode) the agent's update pass ended with `code`.
 */
export type LoaderExit = 'stopped' | 'restart-loader' | { agentExit: number };

export class Loader {
  private readonly layout: InstallLayout;
  private readonly requestFile: string;
  private state: LoaderState = { ...EMPTY_STATE };
  private child: AgentChild | null = null;
  private childVersion: string | null = null;
  private restartDelayMs = 1000;

  constructor(private readonly options: LoaderOptions) {
    this.layout = new InstallLayout(options.installDir);
    this.requestFile = join(handoverDir(options.agentDataDir), REQUEST_FILE);
  }

  /** Runs until `signal` aborts (then stops the agent gracefully) or the loader itself was updated. */
  async run(signal: AbortSignal): Promise<LoaderExit> {
    this.prepare();
    await this.recover(signal);
    const interval = this.options.checkIntervalMs ?? 500;
    let started = false;
    while (!signal.aborted) {
      if (this.options.once === true && started && this.child !== null && !this.child.running()) {
        // Once mode: the agent's pass ended; a handover it asked for just before is still honoured.
        if (this.pendingRequest() === null) {
          const how = await this.child.exited;
          this.options.logger.info(
            { version: this.childVersion, ...how },
            'the agent finished its update pass',
          );
          return { agentExit: how.code ?? 1 };
        }
      } else if (this.child === null || !this.child.running()) {
        await this.startCurrent(signal);
        started = true;
      }
      if (this.child?.running() && existsSync(this.layout.healthFile))
        rmSync(this.layout.bootsFile, { force: true });
      const request = this.pendingRequest();
      if (request !== null) {
        await this.handover(request, signal);
        if (this.loaderChanged()) {
          await this.waitForAcknowledgement(signal);
          await this.stopChild('SIGTERM');
          this.options.logger.info('the new release brings a new loader; restarting the loader');
          return 'restart-loader';
        }
        continue;
      }
      await sleep(interval, signal).catch(() => undefined);
    }
    await this.stopChild('SIGTERM');
    return 'stopped';
  }

  /** The journal as it stands (for tests and `flotilla loader status`). */
  current(): LoaderState {
    return structuredClone(this.state);
  }

  private prepare(): void {
    try {
      mkdirSync(this.layout.runDir, { recursive: true });
      const dir = handoverDir(this.options.agentDataDir);
      mkdirSync(dir, { recursive: true });
      writeJson(join(dir, POINTER_FILE), { installDir: this.layout.dir });
    } catch (e) {
      throw new FlotillaError('FLT_IO', `cannot prepare ${this.layout.dir}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const stored = readJson<LoaderState>(this.layout.stateFile);
    this.state = stored ?? { ...EMPTY_STATE, committed: {}, failed: {} };
    if (this.state.phase === 'idle') {
      // `current` is the truth when no switch is in flight (the launcher may have moved it back).
      const link = readLink(this.layout.current);
      if (link !== null) this.state.current = basename(link);
    }
    if (this.state.current === null)
      throw new FlotillaError(
        'FLT_CONFIG_INVALID',
        `${this.layout.current} does not point at an agent release: install one first (docs/agent-lifecycle.md)`,
      );
  }

  /** Completes what a killed loader left: a half-done switch is finished, a trial runs again, a rollback ends. */
  private async recover(signal: AbortSignal): Promise<void> {
    const killed = await killStaleAgent(this.layout.pidFile, this.layout.dir);
    if (killed !== null)
      this.options.logger.warn({ pid: killed }, 'killed the agent a previous loader left running');
    const trial = this.state.trial;
    if (trial === null || this.state.phase === 'idle') return;
    this.options.logger.warn(
      { phase: this.state.phase, trial },
      'the loader stopped mid-switch; completing it',
    );
    if (this.state.phase === 'rolling-back') return this.rollBack(trial, trial.reason ?? 'rolled back');
    if (this.state.phase === 'switching') this.switchLinks(trial);
    await this.runTrial(trial, signal);
  }

  private pendingRequest(): HandoverRequest | null {
    let request: HandoverRequest | null;
    try {
      request = readJson<HandoverRequest>(this.requestFile);
    } catch (e) {
      this.options.logger.warn({ err: e }, 'ignoring an unreadable handover request');
      rmSync(this.requestFile, { force: true });
      return null;
    }
    if (request === null) return null;
    if (
      typeof request.releaseDir !== 'string' ||
      typeof request.root !== 'string' ||
      !/^[0-9a-f]{64}$/.test(request.root) ||
      typeof request.version !== 'string' ||
      !/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/.test(request.version)
    ) {
      this.options.logger.warn({ request }, 'ignoring a malformed handover request');
      rmSync(this.requestFile, { force: true });
      return null;
    }
    // Already decided: the probe reads the answer from the journal.
    if (request.root in this.state.failed || this.state.committed[request.root] === this.state.current)
      return null;
    return request;
  }

  /** Installs the handed-over tree as versions/<version>, then switches to it on trial. */
  private async handover(request: HandoverRequest, signal: AbortSignal): Promise<void> {
    const { logger } = this.options;
    const target = this.layout.version(request.version);
    if (request.version === this.state.current) {
      this.state.committed[request.root] = request.version;
      this.save();
      return;
    }
    try {
      if (!existsSync(join(target, 'bin', 'flotilla-agent'))) {
        rmSync(target, { recursive: true, force: true });
        const temp = `${target}.tmp`;
        rmSync(temp, { recursive: true, force: true });
        mkdirSync(this.layout.versionsDir, { recursive: true });
        cpSync(request.releaseDir, temp, { recursive: true, verbatimSymlinks: true });
        renameSync(temp, target);
      }
    } catch (e) {
      const reason = `cannot install ${request.releaseDir} as ${target}: ${(e as Error).message}`;
      logger.error({ err: e }, reason);
      this.state.failed[request.root] = reason;
      this.save();
      return;
    }
    const trial: Trial = { from: this.state.current, to: request.version, root: request.root };
    logger.info({ from: trial.from, to: trial.to }, 'switching to a new agent release');
    this.state = { ...this.state, phase: 'switching', trial };
    this.save();
    // The old agent sits in its update's health step: killed, it resumes that transaction from its
    // journal as the new agent (graceful stop would roll the update back).
    await this.stopChild('SIGKILL');
    this.switchLinks(trial);
    await this.runTrial(trial, signal);
  }

  private switchLinks(trial: Trial): void {
    if (trial.from !== null) switchLink(this.layout.previous, join('versions', trial.from));
    switchLink(this.layout.current, join('versions', trial.to));
    this.state = { ...this.state, phase: 'trial', current: trial.to, previous: trial.from };
    this.save();
  }

  /** Starts the new agent; it must write the health marker within the window and keep running. */
  private async runTrial(trial: Trial, signal: AbortSignal): Promise<void> {
    const windowMs = this.options.healthWindowMs ?? 120_000;
    await this.stopChild('SIGKILL');
    await this.startCurrent(signal);
    const child = this.child;
    const deadline = Date.now() + windowMs;
    let reason: string | null = null;
    while (reason === null) {
      if (signal.aborted) return; // the journal says trial: the next loader runs it again
      if (child === null || !child.running()) {
        const how = child ? await child.exited : { code: null, signal: null };
        const tail = child?.tail() ?? '';
        reason =
          `agent ${trial.to} exited (${how.signal ?? `code ${String(how.code)}`}) before it reached the server` +
          (tail ? `: ${lastLines(tail)}` : '');
        break;
      }
      if (this.markerOf(child.pid)) break;
      if (Date.now() >= deadline) {
        reason = `agent ${trial.to} did not reach the server within ${Math.round(windowMs / 1000)} s`;
        break;
      }
      await sleep(200, signal).catch(() => undefined);
    }
    if (reason !== null) return this.rollBack(trial, reason);
    this.options.logger.info({ version: trial.to }, 'the new agent reached the server; keeping it');
    if (trial.root !== null) this.state.committed[trial.root] = trial.to;
    this.state = { ...this.state, phase: 'idle', trial: null };
    this.save();
    rmSync(this.layout.bootsFile, { force: true });
  }

  private async rollBack(trial: Trial, reason: string): Promise<void> {
    const { logger } = this.options;
    logger.error({ from: trial.to, to: trial.from, reason }, 'the new agent is not healthy; switching back');
    this.state = { ...this.state, phase: 'rolling-back', trial: { ...trial, reason } };
    this.save();
    await this.stopChild('SIGKILL');
    if (trial.from === null) {
      logger.error('no previous agent release to return to; keeping the failed one');
    } else {
      switchLink(this.layout.current, join('versions', trial.from));
    }
    if (trial.root !== null) this.state.failed[trial.root] = reason;
    this.state = { ...this.state, phase: 'idle', trial: null, current: trial.from ?? trial.to };
    this.save();
    rmSync(this.requestFile, { force: true });
    this.restartDelayMs = 1000;
  }

  private async startCurrent(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    if (this.child !== null && !this.child.running()) {
      const how = await this.child.exited;
      this.options.logger.warn(
        { version: this.childVersion, ...how, retryInMs: this.restartDelayMs },
        'the agent exited; starting it again',
      );
      await sleep(this.restartDelayMs, signal).catch(() => undefined);
      this.restartDelayMs = Math.min(this.restartDelayMs * 2, 60_000);
      if (signal.aborted) return;
    }
    const version = this.state.current as string;
    rmSync(this.layout.healthFile, { force: true });
    const child = spawnAgent(
      this.layout.version(version),
      this.options.agentArgs,
      { ...(this.options.env ?? process.env), FLOTILLA_LOADER_HEALTH_FILE: this.layout.healthFile },
      { stdout: this.options.stdout ?? process.stdout, stderr: this.options.stderr ?? process.stderr },
    );
    this.child = child;
    this.childVersion = version;
    writeFileSync(this.layout.pidFile, `${child.pid}\n`);
    this.options.logger.info({ version, pid: child.pid }, 'agent started');
    void child.exited.then(() => {
      if (this.child === child) rmSync(this.layout.pidFile, { force: true });
    });
  }

  private async stopChild(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (child === null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await child.exited;
    clearTimeout(timer);
    this.child = null;
    rmSync(this.layout.pidFile, { force: true });
  }

  /**
   * Whether the agent `pid` wrote the health marker. A marker that is not JSON (yet) is not one: an
   * agent may be writing it this moment (older agents wrote it in place), so it is read again at the
   * next poll; the health window still ends the trial if it never becomes valid.
   */
  private markerOf(pid: number): boolean {
    let marker: { pid?: number } | null;
    try {
      marker = readJson<{ pid?: number }>(this.layout.healthFile);
    } catch {
      return false;
    }
    return marker !== null && marker.pid === pid;
  }

  /** After a switch to a release whose loader differs: the probe removes the request once the engine saw the commit. */
  private async waitForAcknowledgement(signal: AbortSignal): Promise<void> {
    const until = Date.now() + 5 * 60_000;
    while (!signal.aborted && existsSync(this.requestFile) && Date.now() < until)
      await sleep(500, signal).catch(() => undefined);
    // The engine commits right after its probe passes.
    await sleep(2000, signal).catch(() => undefined);
  }

  private loaderChanged(): boolean {
    const self = this.options.selfFile;
    const current = this.state.current;
    if (self === undefined || current === null || this.state.phase !== 'idle') return false;
    const next = join(this.layout.version(current), 'lib', basename(self));
    try {
      return realpathSync(next) !== realpathSync(self) && digest(next) !== digest(self);
    } catch {
      return false;
    }
  }

  private save(): void {
    writeJson(this.layout.stateFile, this.state);
  }
}

function readLink(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

function digest(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function lastLines(text: string): string {
  return text.split('\n').slice(-5).join(' | ').slice(-800);
}
