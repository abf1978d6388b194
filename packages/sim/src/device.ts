/**
 * One simulated device: its own Ed25519 identity, token, control channel (WebSocket with
 * heartbeats), TUF metadata (both repositories refreshed and verified on every assignment) and
 * update reports, all through the agent's own protocol code. What it does not do is download and
 * install: an "install" is a sleep of the configured time, and it fails, or crash-loops after it,
 * at the configured rates. Shared things (the HTTP client, the logger, the image root) live in
 * the fleet; a device holds only its identity, token, channel and a few counters.
 */
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import {
  ControlChannel,
  MemoryMetadata,
  ReportQueue,
  TokenManager,
  downloadFirstRoot,
  readAssignment,
  reactionTo,
} from '@flotilla/agent';
import type { VerifiedRelease } from '@flotilla/agent';
import {
  DEVICE_REPORTS_ROUTE,
  DEVICE_REPORT_BATCH_ROUTE,
  FlotillaError,
  STATE_VERSION_HEADER,
  errorSummary,
  isFlotillaError,
} from '@flotilla/protocol';
import type { AppProcessStatus, DeviceReport, UpdateReport } from '@flotilla/protocol';
import type { FleetShared } from './shared.js';

/** How the app of one release runs on a simulated device. */
interface RunningApp {
  targetPath: string;
  restarts: number;
  since: string;
  lastExit: AppProcessStatus['lastExit'];
  crashTimer: NodeJS.Timeout | null;
}

export class SimDevice {
  readonly tokens: TokenManager;
  #reports: ReportQueue | null = null;
  #apps = new Map<string, RunningApp>();
  /** The state version the last converge pass answered; null before the first. */
  #heldVersion: number | null = null;
  /** The newest state version the server told (welcome, state-changed); sent with director reads. */
  #toldVersion: number | null = null;
  #converging: Promise<void> | null = null;
  #again = false;
  /**
   * The device's trusted TUF metadata, in memory (files per device cost more CPU than verifying
   * them); trusted on first use again when the simulator restarts.
   */
  #tuf: { image: MemoryMetadata; director: MemoryMetadata } | null = null;
  /**
   * The device's own stop signal, aborted by the fleet's `stop` (not a listener of the fleet's
   * signal): Node's EventTarget keeps listeners in a list it walks on every add and remove, so
   * thousands of devices listening to one signal made every request's listener cost O(devices).
   */
  readonly #stop = new AbortController();
  connected = false;

  constructor(
    readonly shared: FleetShared,
    readonly index: number,
    readonly deviceId: string,
    readonly privateKey: KeyObject,
    readonly publicKey: string,
  ) {
    this.tokens = new TokenManager(
      shared.http,
      { privateKey, publicKey, created: false },
      deviceId,
      () => undefined,
    );
  }

  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Ends the device's connection, timers and requests (the fleet is stopping). */
  stop(reason?: unknown): void {
    this.#stop.abort(reason);
  }

  get tufDir(): string {
    return join(this.shared.stateDir, 'tuf', this.deviceId);
  }

  /**
   * Runs the control channel until the signal ends it (reconnecting as the agent does). The first
   * connection waits for a slot of the fleet's `connectLimit`, held until it is welcomed or ends.
   */
  async run(): Promise<void> {
    const { shared, signal } = this;
    const release = await new Promise<() => void>((acquired) => {
      void shared.connectLimit(() => new Promise<void>((done) => acquired(done)));
    });
    try {
      if (signal.aborted) return;
      await this.#runChannel(signal, release);
    } finally {
      release();
    }
  }

  #runChannel(signal: AbortSignal, firstAttemptDone: () => void): Promise<void> {
    const { shared } = this;
    const channel = new ControlChannel({
      baseUrl: shared.serverUrl,
      tokens: this.tokens,
      logger: shared.logger,
      heartbeatIntervalMs: 25_000,
      handshakeTimeoutMs: 30_000,
      closeTimeoutMs: 2_000,
      pollIntervalMs: 30_000,
      ...(shared.localAddressOf(this.index) !== undefined && {
        localAddress: shared.localAddressOf(this.index),
      }),
      handlers: {
        stateVersion: () => this.#heldVersion,
        onWelcome: (data) => {
          firstAttemptDone();
          if (!this.connected) shared.stats.connected++;
          this.connected = true;
          for (const [app, running] of this.#apps) this.#pushStatus(app, running, 'running');
          this.#toldVersion = Math.max(this.#toldVersion ?? data.stateVersion, data.stateVersion);
          if (this.#heldVersion === null && !shared.syncOnConnect) this.#heldVersion = data.stateVersion;
          if (data.stateVersion !== this.#heldVersion) this.converge(data.stateVersion);
        },
        onStateChanged: (version) => {
          shared.stats.notified++;
          shared.onNotified?.(this.deviceId);
          this.converge(version);
        },
        onRequestInventory: () => Promise.resolve(),
      },
      onDropped: (end) => {
        firstAttemptDone();
        // Reset or closed before the welcome (a server's connection cap, a handshake timeout).
        shared.stats.dropped++;
        shared.stats.countError(
          new FlotillaError('FLT_NETWORK', `control channel closed before the welcome (${end.code})`),
        );
      },
      onError: (error) => {
        firstAttemptDone();
        shared.stats.countError(error);
        // Revoked, rejected or unknown: this device stops, as an agent would.
        return reactionTo(error) === 'retry' || reactionTo(error) === 'refresh-token';
      },
    });
    return channel.run(signal).finally(() => {
      if (this.connected) shared.stats.connected--;
      this.connected = false;
      for (const app of this.#apps.values()) if (app.crashTimer) clearTimeout(app.crashTimer);
      this.#reports?.close();
    });
  }

  /** Brings the device to what the server assigns (one pass at a time; a notice during a pass runs another). */
  converge(version: number): void {
    this.#toldVersion = Math.max(this.#toldVersion ?? version, version);
    if (this.#converging) {
      this.#again = true;
      return;
    }
    this.#converging = this.#convergeOnce(version)
      .catch((error: unknown) => {
        this.shared.stats.countError(error);
      })
      .finally(() => {
        this.#converging = null;
        if (this.#again) {
          this.#again = false;
          this.converge(this.#toldVersion ?? version);
        }
      });
  }

  async #convergeOnce(version: number): Promise<void> {
    const releases = await this.shared.refreshLimit(() => this.#verifiedReleases());
    this.#heldVersion = version;
    await Promise.all(releases.map((r) => this.#install(r)));
  }

  /** Both repositories refreshed and verified (agent tuf/), the first roots provisioned on first use. */
  async #verifiedReleases(): Promise<VerifiedRelease[]> {
    const { shared } = this;
    const attempt = async (): Promise<VerifiedRelease[]> => {
      const token = await this.tokens.get(this.signal);
      // As the agent: the version told, so that the server may reuse a recent token check.
      const told = this.#toldVersion;
      const headers = (): Record<string, string> =>
        told === null
          ? { authorization: `Bearer ${token}` }
          : { authorization: `Bearer ${token}`, [STATE_VERSION_HEADER]: String(told) };
      const fetch = { headers, timeoutMs: 30_000 };
      const directorRepoUrl = `${shared.serverUrl}/tuf/director/${this.deviceId}/`;
      const tuf = (this.#tuf ??= { image: shared.imageMetadata(), director: new MemoryMetadata() });
      if (!tuf.image.has('root.json')) {
        const root = await shared.imageRoot(fetch);
        if (root === null) return [];
        shared.provisionRoot(tuf.image, root);
      }
      if (!tuf.director.has('root.json')) {
        const root = await downloadFirstRoot('director', `${directorRepoUrl}1.root.json`, fetch);
        if (root === null) return [];
        shared.provisionRoot(tuf.director, root);
      }
      const assignment = await readAssignment({
        imageRepoUrl: `${shared.serverUrl}/tuf/image/`,
        directorRepoUrl,
        metadataDir: this.tufDir,
        memory: tuf,
        fetch,
      });
      shared.stats.verified++;
      return assignment.kind === 'assigned' ? assignment.releases : [];
    };
    try {
      return await attempt();
    } catch (error) {
      // The token may have expired between the get and the last metadata file: once more with a new one.
      if (!isFlotillaError(error) || error.code !== 'FLT_TUF_FETCH') throw error;
      if ((error.details as { status?: unknown } | undefined)?.status !== 401) throw error;
      this.tokens.invalidate();
      return attempt();
    }
  }

  async #install(release: VerifiedRelease): Promise<void> {
    const { shared } = this;
    const current = this.#apps.get(release.app);
    if (current?.targetPath === release.path) return;
    const { behaviour } = shared;
    const update = (phase: UpdateReport['phase'], extra: Partial<UpdateReport> = {}) =>
      this.#report({
        app: release.app,
        targetPath: release.path,
        phase,
        at: new Date().toISOString(),
        ...extra,
      });
    shared.stats.installing++;
    try {
      update('downloading', { bytesDone: 0, bytesTotal: release.length });
      await shared.sleep(behaviour.installTimeMs(), this.signal);
      update('installing', {
        bytesDone: release.length,
        bytesTotal: release.length,
        bytesFetched: release.length,
      });
      if (behaviour.fails()) {
        shared.stats.failed++;
        update('failed', {
          error: {
            code: 'FLT_RUNTIME_FAILED',
            message: `simulated install failure (sim --failure-rate) of ${release.app}@${release.release.version}`,
          },
          running: current?.targetPath ?? null,
        });
        return;
      }
      if (current?.crashTimer) clearTimeout(current.crashTimer);
      const running: RunningApp = {
        targetPath: release.path,
        restarts: 0,
        since: new Date().toISOString(),
        lastExit: null,
        crashTimer: null,
      };
      this.#apps.set(release.app, running);
      update('committed', { running: release.path });
      shared.stats.committed++;
      this.#pushStatus(release.app, running, 'running');
      const crashAfter = behaviour.crashAfterMs();
      if (crashAfter !== null) this.#crashLoop(release.app, running, crashAfter, 1000);
    } finally {
      shared.stats.installing--;
    }
  }

  /** The app exits with code 1 after `delayMs`, is restarted (restarts + 1), and again, backing off to 30 s. */
  #crashLoop(app: string, running: RunningApp, delayMs: number, backoffMs: number): void {
    running.crashTimer = setTimeout(() => {
      if (this.#apps.get(app) !== running || this.signal.aborted) return;
      if (running.restarts === 0) this.shared.stats.crashLooping++;
      running.restarts++;
      this.shared.stats.restarts++;
      const at = new Date().toISOString();
      running.lastExit = { code: 1, signal: null, at };
      running.since = at;
      this.#pushStatus(app, running, 'restarting');
      this.#crashLoop(app, running, backoffMs, Math.min(backoffMs * 2, 30_000));
    }, delayMs);
    running.crashTimer.unref();
  }

  #pushStatus(app: string, running: RunningApp, state: AppProcessStatus['state']): void {
    this.#report({
      app,
      targetPath: running.targetPath,
      process: { state, since: running.since, restarts: running.restarts, lastExit: running.lastExit },
      at: new Date().toISOString(),
    });
  }

  /** Sends queued reports; whatever queued meanwhile goes in one batch (as the agent does). */
  #reportQueue(): ReportQueue {
    const { shared } = this;
    const post = async (path: string, body: unknown, sent: readonly DeviceReport[], signal: AbortSignal) => {
      try {
        await shared.http.request({
          method: 'POST',
          path,
          schema: null,
          token: await this.tokens.get(signal),
          body,
          signal,
        });
        for (const r of sent) {
          shared.stats.reports++;
          if ('phase' in r && r.phase === 'committed') shared.stats.committedReported++;
          if ('phase' in r && r.phase === 'failed') shared.stats.failedReported++;
        }
      } catch (error) {
        if (reactionTo(error) === 'refresh-token') this.tokens.invalidate();
        shared.stats.countError(error);
        throw error;
      }
    };
    return new ReportQueue({
      logger: shared.logger,
      send: (r, signal) => post(DEVICE_REPORTS_ROUTE, r, [r], signal),
      sendBatch: (reports, signal) => post(DEVICE_REPORT_BATCH_ROUTE, { reports }, reports, signal),
    });
  }

  #report(report: DeviceReport): void {
    this.#reports ??= this.#reportQueue();
    this.#reports.push(report);
  }
}

export function errorCode(error: unknown): string {
  return errorSummary(error).code;
}
