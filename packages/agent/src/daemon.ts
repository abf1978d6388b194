/**
 * The agent daemon: local state, enrollment, then connected sessions, under one lifecycle state
 * machine. The first fatal error is kept; stop() is graceful (WebSocket closed with 1000, loops
 * drained, state.db checkpointed and closed) within `stopTimeoutMs`, after which it forces.
 */
import { FlotillaError } from '@flotilla/protocol';
import { lockDataDir } from '@flotilla/node-kit';
import type { DeviceStatus } from '@flotilla/protocol';
import type { DataDirLock } from '@flotilla/node-kit';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { reactionTo } from './client/classify.js';
import { enrollDevice } from './client/enroll.js';
import type { FetchFn, JsonHttpClient } from '@flotilla/node-kit';
import { agentHttpClient } from './client/http.js';
import { collectInventory } from './inventory/collect.js';
import { Lifecycle } from './lifecycle.js';
import type { AgentLifecycleState } from './lifecycle.js';
import { runSession } from './session.js';
import { prepareLocalState, readRegistrationKey } from './startup.js';
import type { LocalSetup } from './startup.js';
import { serverBackoff } from './sync/backoff.js';
import { SecretOpener } from './secrets/opener.js';
import { UpdateEngine } from './update/engine.js';
import type { AssignmentAhead, ReleaseSpec } from './model/release.js';
import { sleep } from './util/sleep.js';

export interface StartAgentOptions {
  /** Defaults to a pino logger at `config.logLevel` on stdout. */
  logger?: Logger;
  /** Defaults to the global fetch. */
  fetch?: FetchFn;
  /** Uniform in [0, 1) for backoff jitter; injectable for tests. */
  random?: () => number;
  /** Run the update engine: recover, fetch and apply assigned releases (default true; tests of other parts turn it off). */
  updates?: boolean;
  /**
   * The assignment each converge pass starts from, instead of the server's TUF-verified one (tests of
   * the session's wiring against a server without a TUF repository). Every call is one converge pass.
   */
  assignment?: (signal: AbortSignal, ahead?: AssignmentAhead) => Promise<ReleaseSpec[]>;
}

export interface RunningAgent {
  /** Null until the device has enrolled. */
  readonly deviceId: string | null;
  lifecycle(): AgentLifecycleState;
  /** Graceful stop; resolves once STOPPED (or FAILED). Safe to call more than once. */
  stop(): Promise<void>;
  /** Resolves when the agent has STOPPED; rejects with the first fatal error when it FAILED. */
  readonly done: Promise<void>;
}

/**
 * Opens local state (FLT_IO / FLT_CONFIG_INVALID are thrown here, before anything runs) and
 * starts the daemon. Resolves as soon as it runs; enrollment and connection continue in the background.
 */
export async function startAgent(
  config: AgentConfig,
  options: StartAgentOptions = {},
): Promise<RunningAgent> {
  const logger = (options.logger ?? pino({ level: config.logLevel })).child({ component: 'agent' });
  // One agent per data directory: a second one would run the same identity and the same apps.
  const lock = lockDataDir(config.dataDir, 'flotilla agent');
  let local: LocalSetup;
  try {
    local = prepareLocalState(config, logger);
  } catch (e) {
    lock.release();
    throw e;
  }
  let updates: UpdateEngine | null = null;
  try {
    if (options.updates !== false)
      updates = await UpdateEngine.open({
        dataDir: config.dataDir,
        db: local.db,
        logger: logger.child({ component: 'updates' }),
        keepPrevious: config.keepPreviousReleases,
        cacheMaxBytes: config.chunkCacheMaxBytes,
        fetchDeltas: config.fetchDeltas,
        stageReuse: config.stageReuse,
        stageVerify: config.stageVerify,
        deltaThreads: config.deltaThreads,
        secrets: new SecretOpener(local.identity.privateKey, local.identity.publicKey),
      });
  } catch (e) {
    local.db.close();
    lock.release();
    throw e;
  }
  const daemon = new AgentDaemon(config, local, logger, options, updates, lock);
  daemon.start();
  // Async so that local start-up errors reject rather than throw synchronously.
  return Promise.resolve({
    get deviceId() {
      return daemon.deviceId;
    },
    lifecycle: () => daemon.lifecycle.state,
    stop: () => daemon.stop(),
    done: daemon.done,
  });
}

type SessionEnd = 'stop' | 'reenroll';

class AgentDaemon {
  readonly lifecycle: Lifecycle;
  readonly done: Promise<void>;
  deviceId: string | null;
  private resolveDone!: () => void;
  private rejectDone!: (error: Error) => void;
  private readonly stopController = new AbortController();
  private session: { controller: AbortController; end: SessionEnd } | null = null;
  private main: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | null = null;
  private fatal: Error | null = null;
  private readonly http: JsonHttpClient | null;
  /** `--once`: how the update pass went, once it is over. */
  private passOk: boolean | null = null;

  constructor(
    private readonly config: AgentConfig,
    private readonly local: LocalSetup,
    private readonly logger: Logger,
    private readonly options: StartAgentOptions,
    private readonly updates: UpdateEngine | null,
    private readonly lock: DataDirLock,
  ) {
    this.deviceId = local.state.enrollment()?.deviceId ?? null;
    this.lifecycle = new Lifecycle((from, to) =>
      logger.info({ from, to }, `agent ${to.toLowerCase().replace('_', ' ')}`),
    );
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // The caller may never look at `done`; a failure must not become an unhandled rejection.
    this.done.catch(() => undefined);
    this.http = local.serverUrl === null ? null : agentHttpClient(local.serverUrl, config, options.fetch);
  }

  start(): void {
    this.main = this.run().catch((e: unknown) => this.fail(e));
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async run(): Promise<void> {
    const stopSignal = this.stopController.signal;
    // Interrupted transactions finish or roll back and installed apps come back up; the engine
    // serializes its work, so any update a session triggers runs after this.
    this.updates
      ?.start(stopSignal)
      .catch((e: unknown) => this.logger.error({ err: e }, 'update recovery failed'));
    if (this.http === null) {
      this.logger.info(
        { deviceId: this.deviceId },
        'offline: not contacting the server; running from local state only',
      );
      this.lifecycle.transition('RUNNING');
      return untilAborted(stopSignal);
    }
    const stored = this.local.state.status();
    if (this.deviceId !== null && stored === 'revoked') {
      this.applyStatus('revoked');
      return untilAborted(stopSignal);
    }
    if (this.deviceId !== null && stored !== null && stored !== 'rejected') this.applyStatus(stored);
    while (!stopSignal.aborted && !this.isTerminal()) {
      if (this.deviceId === null && !(await this.enroll(this.http))) break;
      if (this.isTerminal()) break;
      const end = await this.runSession(this.http, this.deviceId as string);
      if (this.passOk !== null) return this.endOnce(this.passOk);
      if (end !== 'reenroll') break;
      this.forgetEnrollment();
    }
    await untilAborted(stopSignal);
  }

  /** `--once`: the pass is over; the agent stops (status 0), or fails when an update failed (status 1). */
  private endOnce(ok: boolean): void {
    if (!ok)
      throw new FlotillaError(
        'FLT_DEPLOY_FAILED',
        'an update of this pass (--once) failed or was rolled back: the device reports say why (flotilla deploy status)',
      );
    this.logger.info('the update pass (--once) is done; stopping');
    void this.stop();
  }

  /** Enrolls with backoff on transient failures. False when stopped or the device is refused. */
  private async enroll(http: JsonHttpClient): Promise<boolean> {
    const registrationKey = readRegistrationKey(this.config);
    if (registrationKey === null) {
      throw new FlotillaError(
        'FLT_CONFIG_INVALID',
        'the device must enroll again but has no registration key: pass --registration-key-file or set FLOTILLA_REGISTRATION_KEY',
        {
          details: { problems: ['registrationKey: required to enroll'] },
        },
      );
    }
    this.lifecycle.transition('ENROLLING');
    const signal = this.stopController.signal;
    const facts = await collectInventory(this.config, {
      logger: this.logger.child({ component: 'inventory' }),
    });
    const backoff = serverBackoff(this.config.pollIntervalMs, this.options.random);
    while (!signal.aborted) {
      try {
        const enrolled = await enrollDevice(http, this.local.identity, {
          registrationKey,
          tags: this.config.tags,
          facts,
          signal,
        });
        this.local.state.saveEnrollment({
          deviceId: enrolled.deviceId,
          serverUrl: http.baseUrl,
          status: enrolled.status,
        });
        this.deviceId = enrolled.deviceId;
        this.logger.info({ deviceId: enrolled.deviceId, status: enrolled.status }, 'enrolled');
        this.applyStatus(enrolled.status);
        return true;
      } catch (e) {
        if (signal.aborted) return false;
        const reaction = reactionTo(e);
        if (reaction === 'revoked' || reaction === 'rejected') {
          this.applyStatus(reaction);
          return false;
        }
        if (reaction === 'fatal') throw e;
        const delayMs = backoff.nextAfter(e);
        this.logger.warn({ err: e, retryInMs: delayMs }, 'enrollment failed; retrying');
        await sleep(delayMs, signal);
      }
    }
    return false;
  }

  private async runSession(http: JsonHttpClient, deviceId: string): Promise<SessionEnd> {
    const controller = new AbortController();
    const onStop = () => controller.abort();
    this.stopController.signal.addEventListener('abort', onStop, { once: true });
    const session = { controller, end: 'stop' as SessionEnd };
    this.session = session;
    try {
      await runSession(
        {
          config: this.config,
          http,
          identity: this.local.identity,
          deviceId,
          state: this.local.state,
          logger: this.logger.child({ deviceId }),
          random: this.options.random,
          applyStatus: (status) => this.applyStatus(status),
          handleError: (error) => this.handleSessionError(error),
          isPending: () => this.lifecycle.state === 'PENDING_ACCEPTANCE',
          updates: this.updates,
          ...(this.options.assignment && { assignment: this.options.assignment }),
          onPassDone: (ok) => {
            this.passOk = ok;
          },
        },
        controller.signal,
      );
    } finally {
      this.stopController.signal.removeEventListener('abort', onStop);
      this.session = null;
    }
    return session.end;
  }

  /** Errors from a running session: true to retry, false when that part must stop. */
  private handleSessionError(error: unknown): boolean {
    switch (reactionTo(error)) {
      case 'revoked':
        this.applyStatus('revoked');
        return false;
      case 'rejected':
        this.applyStatus('rejected');
        return false;
      case 'unknown-device':
        this.logger.warn(
          { deviceId: this.deviceId },
          'the server does not know this device (its database was reset?); enrolling again',
        );
        this.endSession('reenroll');
        return false;
      case 'fatal':
        this.logger.error({ err: error }, 'the server refused a request; retrying later');
        return true;
      default:
        return true;
    }
  }

  /** Reflects the status the server reported; REJECTED and REVOKED end all contact with the server. */
  private applyStatus(status: DeviceStatus): void {
    if (this.deviceId !== null && this.local.state.status() !== status) this.local.state.saveStatus(status);
    const id = this.deviceId;
    switch (status) {
      case 'accepted':
        this.lifecycle.transition('RUNNING');
        return;
      case 'pending':
        if (this.lifecycle.transition('PENDING_ACCEPTANCE')) {
          this.logger.warn(
            { deviceId: id },
            `device awaits acceptance: an operator must accept it (flotilla devices accept ${id ?? ''})`,
          );
        }
        return;
      case 'rejected':
        if (this.lifecycle.transition('REJECTED')) {
          this.logger.error(
            { deviceId: id },
            'an operator rejected this device; no longer contacting the server (accept it, then restart the agent)',
          );
        }
        this.endSession('stop');
        return;
      case 'revoked':
        if (this.lifecycle.transition('REVOKED')) {
          this.logger.error(
            { deviceId: id },
            'this device was revoked; no longer contacting the server (to join again as a new device, delete the identity directory and restart with a registration key)',
          );
        }
        this.endSession('stop');
        return;
    }
  }

  private endSession(end: SessionEnd): void {
    if (!this.session) return;
    this.session.end = end;
    this.session.controller.abort();
  }

  private forgetEnrollment(): void {
    this.local.state.clearEnrollment();
    this.deviceId = null;
  }

  private isTerminal(): boolean {
    return this.lifecycle.isOneOf('REJECTED', 'REVOKED', 'STOPPING', 'STOPPED', 'FAILED');
  }

  private async shutdown(): Promise<void> {
    if (this.lifecycle.isOneOf('STOPPED', 'FAILED')) return;
    this.lifecycle.transition('STOPPING');
    this.stopController.abort();
    const drained = await settlesWithin(this.main, this.config.stopTimeoutMs);
    if (!drained)
      this.logger.warn(
        { stopTimeoutMs: this.config.stopTimeoutMs },
        'graceful stop timed out; closing anyway',
      );
    if (this.lifecycle.state === 'FAILED') return;
    if (this.updates !== null) await this.closeUpdates();
    this.closeDatabase();
    this.lifecycle.transition('STOPPED');
    this.resolveDone();
  }

  private fail(error: unknown): void {
    if (this.fatal) return;
    this.fatal = error instanceof Error ? error : new Error(String(error));
    if (this.fatal instanceof FlotillaError) {
      // An expected refusal (a bad registration key, a revoked device): its message says what to
      // do; the stack is for debugging only.
      this.logger.error({ code: this.fatal.code }, `agent failed: ${this.fatal.message}`);
      this.logger.debug({ err: this.fatal }, 'agent failure details');
    } else {
      this.logger.error({ err: this.fatal }, 'agent failed');
    }
    this.stopController.abort();
    if (this.updates === null) this.closeDatabase();
    else void this.closeUpdates().finally(() => this.closeDatabase());
    this.lifecycle.transition('FAILED');
    this.rejectDone(this.fatal);
  }

  private async closeUpdates(): Promise<void> {
    if (this.updates === null) return;
    await settlesWithin(
      this.updates
        .close()
        .catch((e: unknown) => this.logger.warn({ err: e }, 'stopping app runtimes failed')),
      this.config.stopTimeoutMs,
    );
  }

  private closeDatabase(): void {
    if (!this.local.db.open) return this.lock.release();
    try {
      this.local.db.pragma('wal_checkpoint(TRUNCATE)');
      this.local.db.close();
    } catch (e) {
      this.logger.warn({ err: e }, 'closing the state database failed');
    }
    this.lock.release();
  }
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** True when `promise` settles within `ms`; the timer never outlives the answer. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const settled = () => {
      clearTimeout(timer);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}
