/**
 * Object garbage collection: deletes stored objects that no release references and that were not
 * written or wanted by a push within the grace period (a push uploads before it creates its
 * release). Runs periodically and on demand (admin).
 */
import type { GcResponse } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import type { ObjectStore, StoredObject } from '../objects/store.js';

/** Candidates checked against object_refs per query. */
const BATCH = 500;

export async function collectGarbage(ctx: ServerContext, store: ObjectStore): Promise<GcResponse> {
  const cutoff = ctx.clock.now().getTime() - ctx.config.objectGcGraceMs;
  const result: GcResponse = { deleted: [], bytes: 0, kept: 0 };
  let batch: StoredObject[] = [];
  const sweep = async () => {
    const referenced = new Set(
      (
        await ctx.db
          .selectFrom('object_refs')
          .select('object_id')
          .distinct()
          .where(
            'object_id',
            'in',
            batch.map((o) => o.id),
          )
          .execute()
      ).map((r) => r.object_id),
    );
    for (const object of batch) {
      if (referenced.has(object.id)) continue;
      if (object.modifiedAt.getTime() > cutoff) {
        result.kept += 1;
        continue;
      }
      if (await store.delete(object.id)) {
        result.deleted.push(object.id);
        result.bytes += object.size;
      }
    }
    batch = [];
  };
  for await (const object of store.list()) {
    batch.push(object);
    if (batch.length >= BATCH) await sweep();
  }
  if (batch.length > 0) await sweep();
  return result;
}

export interface GcJob {
  runOnce(): Promise<GcResponse>;
  stop(): Promise<void>;
}

export interface GcJobOptions {
  /** Runs after each round (e.g. dropping what depended on the deleted objects); failures are logged. */
  afterRound?: (result: GcResponse) => Promise<void>;
}

/** Runs `collectGarbage` every `objectGcIntervalMs`; one round at a time; failures are logged. */
export function startGcJob(ctx: ServerContext, store: ObjectStore, options: GcJobOptions = {}): GcJob {
  const log = ctx.log.child({ component: 'object-gc' });
  let running: Promise<GcResponse | undefined> = Promise.resolve(undefined);
  const collectOnce = async (): Promise<GcResponse> => {
    const result = await collectGarbage(ctx, store);
    await options
      .afterRound?.(result)
      .catch((err: unknown) =>
        log.error({ err }, 'after object garbage collection: cleanup failed; retrying at the next round'),
      );
    return result;
  };
  const runOnce = (): Promise<GcResponse> => {
    const round = running.catch(() => undefined).then(collectOnce);
    running = round.catch(() => undefined);
    return round;
  };
  const timer = setInterval(() => {
    runOnce()
      .then(async (r) => {
        if (r.deleted.length === 0) return;
        log.info({ deleted: r.deleted.length, bytes: r.bytes }, 'unreferenced objects deleted');
        await ctx.audit.record({
          actorType: 'system',
          actorId: 'object-gc',
          action: 'objects.gc',
          subjectType: 'objects',
          subjectId: 'store',
          details: { deleted: r.deleted.length, bytes: r.bytes, kept: r.kept },
        });
      })
      .catch((err: unknown) =>
        log.error({ err }, 'object garbage collection failed; retrying at the next interval'),
      );
  }, ctx.config.objectGcIntervalMs);
  timer.unref();
  return {
    runOnce,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
