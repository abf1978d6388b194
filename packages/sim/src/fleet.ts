/**
 * A fleet of simulated devices in one process (docs/simulator.md). Identities are kept in
 * `<stateDir>/devices.jsonl` (device id and PKCS#8 key per line), so a second run with the same
 * state directory reconnects the same devices without enrolling them again; each device's trusted
 * TUF metadata lives in `<stateDir>/tuf/<deviceId>/`.
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { createPrivateKey } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { join } from 'node:path';
import { agentHttpClient, enrollDevice, nodeFetch } from '@flotilla/agent';
import { concurrencyLimit, generateEd25519, publicKeyOfPrivatePem } from '@flotilla/node-kit';
import type { FetchFn } from '@flotilla/node-kit';
import { FlotillaError, errorSummary } from '@flotilla/protocol';
import pino from 'pino';
import type { Logger } from 'pino';
import { SimDevice } from './device.js';
import { memoizePublicKeys } from './key-memo.js';
import type { CrashSpec, DurationRange } from './options.js';
import { Behaviour, FleetShared } from './shared.js';
import type { FleetStats, FleetSummary } from './shared.js';

export interface FleetOptions {
  serverUrl: string;
  registrationKey: string;
  devices: number;
  /** Identities and TUF metadata (a directory kept between runs reuses the devices). */
  stateDir: string;
  installTime?: DurationRange;
  failureRate?: number;
  crashAfter?: CrashSpec | null;
  /** Added before every HTTP request of a device (enrollment, tokens, reports). */
  latencyMs?: number;
  tags?: readonly string[];
  /** Source addresses the devices' WebSockets are spread over (e.g. 127.0.0.1 … 127.0.0.4). */
  localAddresses?: readonly string[];
  /** Enrollments at once (default 16). */
  enrollConcurrency?: number;
  /** TUF refreshes at once across the fleet (default 64). */
  refreshConcurrency?: number;
  /** HTTP requests at once across the fleet (default 256). */
  httpConcurrency?: number;
  /**
   * Devices whose first control channel connection is under way at once (default 256): a fleet
   * enrolled in one go would otherwise open thousands of WebSockets at the same moment, overflow
   * the server's listen backlog, time out its handshakes and leave those devices to back off.
   */
  connectConcurrency?: number;
  /**
   * Whether a device converges (refreshes its TUF metadata) when its first connection comes up, as
   * an agent does at start (default true). Benchmarks that time deployments turn it off to skip a
   * refresh per device that has nothing assigned yet.
   */
  syncOnConnect?: boolean;
  random?: () => number;
  logger?: Logger;
  /** Called for every `state-changed` notice a device receives (benchmarks time them). */
  onNotified?: (deviceId: string) => void;
}

interface KeptIdentity {
  id: string;
  key: string;
}

export class Fleet {
  readonly #controller = new AbortController();
  readonly #shared: FleetShared;
  readonly #devices: SimDevice[] = [];
  readonly #running: Promise<void>[] = [];

  constructor(private readonly opts: FleetOptions) {
    memoizePublicKeys();
    // Enrollments and HTTP waits listen to the fleet's signal (a bounded number at once); each
    // device's connection and timers listen to its own, which `stop` aborts.
    setMaxListeners(0, this.#controller.signal);
    const latency = opts.latencyMs ?? 0;
    const httpLimit = concurrencyLimit(opts.httpConcurrency ?? 256);
    const fetch: FetchFn = (input, init) =>
      httpLimit(async () => {
        if (latency > 0) await this.#shared.sleep(latency);
        return nodeFetch(input, init);
      });
    this.#shared = new FleetShared({
      serverUrl: opts.serverUrl.replace(/\/+$/, ''),
      stateDir: opts.stateDir,
      http: agentHttpClient(
        opts.serverUrl.replace(/\/+$/, ''),
        { requestTimeoutMs: 60_000, maxResponseBytes: 1 << 20 },
        fetch,
      ),
      logger: opts.logger ?? pino({ level: 'silent' }),
      behaviour: new Behaviour(
        opts.installTime ?? { minMs: 0, maxMs: 0 },
        opts.failureRate ?? 0,
        opts.crashAfter ?? null,
        opts.random ?? Math.random,
      ),
      refreshLimit: concurrencyLimit(opts.refreshConcurrency ?? 64),
      connectLimit: concurrencyLimit(opts.connectConcurrency ?? 256),
      localAddresses: opts.localAddresses ?? [],
      signal: this.#controller.signal,
      syncOnConnect: opts.syncOnConnect ?? true,
      ...(opts.onNotified && { onNotified: opts.onNotified }),
    });
    this.#shared.stats.devices = opts.devices;
  }

  get stats(): FleetStats {
    return this.#shared.stats;
  }

  summary(): FleetSummary {
    return this.#shared.stats.toJSON();
  }

  /** Device ids, in the order the devices were created. */
  get deviceIds(): string[] {
    return this.#devices.map((d) => d.deviceId);
  }

  /**
   * Enrolls the devices the state directory does not hold yet and connects every device; resolves
   * once all are enrolled and their connections started (`stats.connected` shows them come up).
   */
  async start(): Promise<void> {
    const { opts } = this;
    const shared = this.#shared;
    await mkdir(join(opts.stateDir, 'tuf'), { recursive: true });
    const kept = await this.#kept();
    const limit = concurrencyLimit(opts.enrollConcurrency ?? 16);
    const file = join(opts.stateDir, 'devices.jsonl');
    const pending: Promise<void>[] = [];
    for (let i = 0; i < opts.devices; i++) {
      const identity = kept[i];
      if (identity !== undefined) {
        shared.stats.reused++;
        this.#add(i, identity.id, identity.key);
        continue;
      }
      pending.push(
        limit(async () => {
          if (this.#controller.signal.aborted) return;
          const pair = generateEd25519();
          const privateKey = createPrivateKey(pair.privateKeyPem);
          const enrolled = await enrollDevice(
            shared.http,
            { privateKey, publicKey: pair.publicKey, created: true },
            {
              registrationKey: opts.registrationKey,
              tags: [...(opts.tags ?? [])],
              facts: { simulated: true, 'sim.index': i },
              signal: this.#controller.signal,
            },
          );
          await appendFile(file, `${JSON.stringify({ id: enrolled.deviceId, key: pair.privateKeyPem })}\n`, {
            mode: 0o600,
          });
          shared.stats.enrolled++;
          this.#add(i, enrolled.deviceId, pair.privateKeyPem, privateKey, pair.publicKey);
        }),
      );
    }
    const results = await Promise.allSettled(pending);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      const count = results.filter((r) => r.status === 'rejected').length;
      const { code, message } = errorSummary(failed.reason);
      throw new FlotillaError(
        code,
        `${count} of ${pending.length} enrollments failed; the first: ${message}`,
        {
          cause: failed.reason,
        },
      );
    }
  }

  /** Resolves when every device's connection is up (or the timeout passes: false). */
  async connected(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#shared.stats.connected < this.#devices.length) {
      if (Date.now() > deadline || this.#controller.signal.aborted) return false;
      await this.#shared.sleep(100);
    }
    return true;
  }

  /** Closes every connection and stops every timer. */
  async stop(): Promise<void> {
    this.#controller.abort();
    for (const device of this.#devices) device.stop(this.#controller.signal.reason);
    await Promise.allSettled(this.#running);
  }

  #add(
    index: number,
    id: string,
    pem: string,
    key = createPrivateKey(pem),
    publicKey = publicKeyOfPrivatePem(pem),
  ) {
    const device = new SimDevice(this.#shared, index, id, key, publicKey);
    if (this.#controller.signal.aborted) device.stop(this.#controller.signal.reason); // enrolled while stopping
    this.#devices.push(device);
    this.#running.push(device.run().catch((error: unknown) => this.#shared.stats.countError(error)));
  }

  async #kept(): Promise<KeptIdentity[]> {
    let text: string;
    try {
      text = await readFile(join(this.opts.stateDir, 'devices.jsonl'), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new FlotillaError('FLT_IO', `cannot read ${this.opts.stateDir}/devices.jsonl`, { cause: e });
    }
    const kept: KeptIdentity[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const parsed = JSON.parse(line) as Partial<KeptIdentity>;
        if (typeof parsed.id === 'string' && typeof parsed.key === 'string')
          kept.push({ id: parsed.id, key: parsed.key });
      } catch {
        // A line torn by a crash mid-append: that device enrolls again.
      }
    }
    return kept;
  }
}
