/** What every simulated device of a fleet shares: HTTP client, logger, limits, behaviour and counters. */
import { setTimeout as delay } from 'node:timers/promises';
import type { JsonHttpClient, Limit } from '@flotilla/node-kit';
import { MemoryMetadata, downloadFirstRoot, provisionTrustedRootInMemory } from '@flotilla/agent';
import { errorSummary } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { CrashSpec, DurationRange } from './options.js';

/** The fleet's counters (the progress line and the `--json` summary). */
export class FleetStats {
  devices = 0;
  enrolled = 0;
  /** Devices whose identity was kept from an earlier run (no enrollment needed). */
  reused = 0;
  connected = 0;
  /** Control channel connections that ended before the server's welcome (then retried with backoff). */
  dropped = 0;
  /** `state-changed` notices received. */
  notified = 0;
  /** Successful refreshes and verifications of both TUF repositories. */
  verified = 0;
  installing = 0;
  committed = 0;
  failed = 0;
  /** Devices whose app began to crash-loop. */
  crashLooping = 0;
  restarts = 0;
  reports = 0;
  /** `committed` / `failed` reports the server accepted. */
  committedReported = 0;
  failedReported = 0;
  readonly errors = new Map<string, number>();

  countError(error: unknown): void {
    const { code } = errorSummary(error);
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  toJSON(): FleetSummary {
    return {
      devices: this.devices,
      enrolled: this.enrolled,
      reused: this.reused,
      connected: this.connected,
      dropped: this.dropped,
      notified: this.notified,
      verified: this.verified,
      installing: this.installing,
      committed: this.committed,
      failed: this.failed,
      crashLooping: this.crashLooping,
      restarts: this.restarts,
      reports: this.reports,
      committedReported: this.committedReported,
      failedReported: this.failedReported,
      errors: Object.fromEntries([...this.errors].sort(([a], [b]) => (a < b ? -1 : 1))),
    };
  }
}

export interface FleetSummary {
  devices: number;
  enrolled: number;
  reused: number;
  connected: number;
  dropped: number;
  notified: number;
  verified: number;
  installing: number;
  committed: number;
  failed: number;
  crashLooping: number;
  restarts: number;
  reports: number;
  committedReported: number;
  failedReported: number;
  /** Errors seen, by code (network errors, refusals, TUF failures…). */
  errors: Record<string, number>;
}

/** Random draws of the configured behaviour, one per install. */
export class Behaviour {
  constructor(
    private readonly installTime: DurationRange,
    private readonly failureRate: number,
    private readonly crash: CrashSpec | null,
    private readonly random: () => number,
  ) {}

  installTimeMs(): number {
    const { minMs, maxMs } = this.installTime;
    return minMs + Math.round((maxMs - minMs) * this.random());
  }

  fails(): boolean {
    return this.failureRate > 0 && this.random() < this.failureRate;
  }

  /** When this install's app starts crash-looping, or null when it keeps running. */
  crashAfterMs(): number | null {
    if (this.crash === null || this.crash.rate === 0) return null;
    return this.random() < this.crash.rate ? this.crash.afterMs : null;
  }
}

export interface FleetSharedOptions {
  serverUrl: string;
  stateDir: string;
  http: JsonHttpClient;
  logger: Logger;
  behaviour: Behaviour;
  refreshLimit: Limit;
  /** First connections of the control channel under way at once (token, upgrade, welcome). */
  connectLimit: Limit;
  localAddresses: readonly string[];
  signal: AbortSignal;
  syncOnConnect: boolean;
  onNotified?: (deviceId: string) => void;
}

export class FleetShared {
  readonly stats = new FleetStats();
  readonly serverUrl: string;
  readonly stateDir: string;
  readonly http: JsonHttpClient;
  readonly logger: Logger;
  readonly behaviour: Behaviour;
  readonly refreshLimit: Limit;
  readonly connectLimit: Limit;
  readonly signal: AbortSignal;
  readonly syncOnConnect: boolean;
  readonly onNotified: ((deviceId: string) => void) | undefined;
  readonly #localAddresses: readonly string[];
  /** The image repository's first root, downloaded once for the whole fleet. */
  #imageRoot: Promise<Uint8Array | null> | null = null;
  /** First roots that passed `provisionTrustedRootInMemory`'s checks (`provisionRoot`). */
  readonly #checkedRoots: Buffer[] = [];

  constructor(opts: FleetSharedOptions) {
    this.serverUrl = opts.serverUrl;
    this.stateDir = opts.stateDir;
    this.http = opts.http;
    this.logger = opts.logger;
    this.behaviour = opts.behaviour;
    this.refreshLimit = opts.refreshLimit;
    this.connectLimit = opts.connectLimit;
    this.signal = opts.signal;
    this.syncOnConnect = opts.syncOnConnect;
    this.onNotified = opts.onNotified;
    this.#localAddresses = opts.localAddresses;
  }

  localAddressOf(index: number): string | undefined {
    const n = this.#localAddresses.length;
    return n === 0 ? undefined : this.#localAddresses[index % n];
  }

  /** The image repository's `1.root.json` (null: nothing signed yet); each device still verifies it. */
  imageRoot(fetch: { headers: () => Record<string, string>; timeoutMs: number }): Promise<Uint8Array | null> {
    this.#imageRoot ??= downloadFirstRoot('image', `${this.serverUrl}/tuf/image/1.root.json`, fetch).then(
      (root) => {
        if (root === null) this.#imageRoot = null; // ask again next time
        return root;
      },
      (error: unknown) => {
        this.#imageRoot = null;
        throw error;
      },
    );
    return this.#imageRoot;
  }

  /**
   * `provisionTrustedRootInMemory` (parse the first root, check that it is self-signed, trust it)
   * for a device. Roots byte-identical to one that passed these checks before in this process are
   * trusted without repeating them (the image root and the director's root are the same for every
   * device); any other is checked, and one that fails is never kept.
   */
  provisionRoot(memory: MemoryMetadata, rootBytes: Uint8Array): void {
    if (!this.#checkedRoots.some((checked) => checked.equals(rootBytes))) {
      provisionTrustedRootInMemory(memory, rootBytes);
      if (this.#checkedRoots.length >= 8) this.#checkedRoots.shift();
      this.#checkedRoots.push(Buffer.from(rootBytes));
      return;
    }
    if (!memory.has('root.json')) memory.write('root.json', rootBytes);
  }

  /** A device's trusted image metadata (in memory, like the director's). */
  imageMetadata(): MemoryMetadata {
    return new MemoryMetadata();
  }

  /** Resolves after `ms`, or at once when `signal` (default: the fleet's) ends. */
  async sleep(ms: number, signal: AbortSignal = this.signal): Promise<void> {
    if (ms <= 0) return;
    await delay(ms, undefined, { signal }).catch(() => undefined);
  }
}
