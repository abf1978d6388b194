/**
 * The delta endpoint (`ObjectRoutes.deltas`): changed files as binary deltas against the installed
 * release, one batch of pairs at a time (a delta request makes the server compute, and records are
 * large).
 */
import { MAX_DELTA_PAIRS_PER_REQUEST, ObjectRoutes } from '@flotilla/protocol';
import type { DeltaPair } from '@flotilla/protocol';
import { deltaPairKey, readDeltaPack } from '@flotilla/store';
import type { DeltaRecord } from '@flotilla/store';
import type { FetchRequestOptions } from './fetcher.js';
import type { Transport } from './transport.js';

export class DeltaClient {
  /** The server has no delta route (an older one): chunks only, and no more asking. */
  private unsupported = false;

  constructor(
    private readonly transport: Transport,
    private readonly maxDeltaBytes: number,
  ) {}

  /** Each record to `onRecord`; false when the server offers no deltas (the caller fetches chunks). */
  async fetchDeltas(
    pairs: readonly DeltaPair[],
    onRecord: (record: DeltaRecord) => Promise<void>,
    options: FetchRequestOptions = {},
  ): Promise<boolean> {
    if (this.unsupported || pairs.length === 0) return !this.unsupported;
    for (let i = 0; i < pairs.length; i += MAX_DELTA_PAIRS_PER_REQUEST) {
      if (this.unsupported) return false;
      await this.batch(pairs.slice(i, i + MAX_DELTA_PAIRS_PER_REQUEST), onRecord, options);
    }
    return !this.unsupported;
  }

  private async batch(
    pairs: DeltaPair[],
    onRecord: (record: DeltaRecord) => Promise<void>,
    options: FetchRequestOptions,
  ): Promise<void> {
    const exchange = await this.transport.postJson(ObjectRoutes.deltas, { pairs }, options.signal);
    const { response, idle } = exchange;
    try {
      if (await this.transport.routeMissing(response, 'the server lacks delta bases')) {
        this.unsupported = true;
        return;
      }
      await this.transport.expectOk(response, ObjectRoutes.deltas);
      const expected = new Set(pairs.map((p) => deltaPairKey(p.target, p.base)));
      const records = readDeltaPack(this.transport.body(exchange, options), {
        expected,
        maxPayloadBytes: this.maxDeltaBytes,
      });
      for await (const record of records) await onRecord(record);
    } finally {
      idle.stop();
    }
  }
}
