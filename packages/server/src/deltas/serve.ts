/**
 * The delta pack for `POST /api/v1/objects/deltas`: per requested (target, base) file pair, in
 * request order and each once, the zstd record or "none". A device names only objects of its own
 * releases (others are answered as not stored) and gets deltas only for its updates' file pairs.
 */
import { Readable } from 'node:stream';
import type { DeltaPair } from '@flotilla/protocol';
import { DeltaKind, deltaPairKey, writeDeltaPack } from '@flotilla/store';
import type { DeltaRecord } from '@flotilla/store';
import { notStored } from '../objects/access.js';
import type { DeviceScope } from '../objects/access.js';
import type { UpdatePairs } from './delta-pairs.js';
import type { DeltaMetrics } from './metrics.js';
import type { DeltaService } from './service.js';

export interface DeltaServing {
  deltas: DeltaService;
  metrics: DeltaMetrics;
  /** The file pairs of a device's updates: the only delta pairs computed for a device. */
  updatePairs: UpdatePairs;
}

/** The delta pack as a byte stream; `scope` is null for an operator (every pair is served). */
export async function deltaPack(
  svc: DeltaServing,
  requested: readonly DeltaPair[],
  scope: DeviceScope | null,
): Promise<Readable> {
  const seen = new Set<string>();
  const pairs = requested.filter((p) => {
    const key = deltaPairKey(p.target, p.base);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const ids = pairs.flatMap((p) => [p.target, p.base]);
  if (scope) {
    const unreadable = scope.unreadable(ids);
    if (unreadable.length > 0) throw notStored(unreadable);
  }
  const files = await svc.deltas.fileObjects(ids);
  // A device gets deltas only for the file pairs of its own updates; other pairs cost nothing.
  const declined = scope ? await svc.updatePairs.outside(scope, pairs) : new Set<string>();
  const { deltas, metrics } = svc;
  async function* records(): AsyncGenerator<DeltaRecord> {
    for await (const record of deltas.records(pairs, files, 'request', declined)) {
      metrics.served.inc({ kind: record.kind === DeltaKind.zstd ? 'zstd' : 'none' });
      metrics.bytesServed.inc(record.payload.length);
      yield record;
    }
  }
  return Readable.from(writeDeltaPack(records()), { objectMode: false });
}
