/**
 * Reports inventory (PUT inventory): at start, whenever the facts' hash changes (checked every
 * `inventoryCheckIntervalMs`, about a minute), when the server asks, and at least every
 * `inventoryIntervalMs` even if nothing changed.
 */
import { serialQueue } from '@flotilla/node-kit';
import type { Facts } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { DeviceApi } from '../client/device-api.js';
import type { LocalState } from '../state/local-state.js';
import { sleep } from '../util/sleep.js';
import { factsHash } from './hash.js';

export interface ReporterOptions {
  api: DeviceApi;
  state: LocalState;
  logger: Logger;
  collect: () => Promise<Facts>;
  checkIntervalMs: number;
  reportIntervalMs: number;
  /** Returns false when the error ends reporting (device revoked, rejected, unknown). */
  onError: (error: unknown) => boolean;
  random?: () => number;
}

export class InventoryReporter {
  /** Reports run one at a time; a request while one runs waits for it. */
  private readonly serialized = serialQueue();

  constructor(private readonly options: ReporterOptions) {}

  /** Collects and reports now, changed or not (the server's `request-inventory`). */
  reportNow(signal: AbortSignal): Promise<void> {
    return this.serialized(() => this.report(true, signal));
  }

  async run(signal: AbortSignal): Promise<void> {
    const random = this.options.random ?? Math.random;
    let force = true;
    while (!signal.aborted) {
      try {
        await this.serialized(() => this.report(force, signal));
        force = false;
      } catch (e) {
        if (signal.aborted || !this.options.onError(e)) return;
        this.options.logger.warn({ err: e }, 'inventory report failed; will retry at the next check');
      }
      // ±10% so that a fleet started together does not report together.
      await sleep(this.options.checkIntervalMs * (0.9 + 0.2 * random()), signal);
    }
  }

  private async report(force: boolean, signal: AbortSignal): Promise<void> {
    const { state, api, logger } = this.options;
    const facts = await this.options.collect();
    const hash = factsHash(facts);
    const last = state.lastInventory();
    const due = last.reportedAtMs === null || Date.now() - last.reportedAtMs >= this.options.reportIntervalMs;
    if (!force && !due && hash === last.hash) return;
    await api.putInventory(facts, signal);
    state.saveInventoryReport(hash, Date.now());
    logger.info({ facts: Object.keys(facts).length, changed: hash !== last.hash }, 'inventory reported');
  }
}
