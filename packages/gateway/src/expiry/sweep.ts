/**
 * Expiry (docs/gateway.md "Expiry"): a ready image not looked up within the expiration timeout
 * is removed from its platform and, when no other image row uses the same file, from the cache.
 * The row goes first, conditionally on its last use being unchanged, so a lookup racing the sweep
 * keeps the image; a file left behind by a failed removal is logged and removed by hand.
 */
import { rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/config.js';
import { deliveryFor } from '../platforms/delivery.js';
import { cachedImagePath, conversionCacheOf } from '../jobs/runner.js';
import { subjectOf } from '../jobs/store.js';
import type { ImageStore } from '../jobs/store.js';
import type { FleetHost } from '../platforms/fleet.js';
import type { Clock, GatewayAudit, GatewayAuditEntry, GatewayImagesTable } from '../jobs/tables.js';

export interface RemovalDeps {
  store: ImageStore;
  config: GatewayConfig;
  audit: GatewayAudit;
  log: Logger;
  /** The server's side of `fleet` platforms (withdraws their releases). */
  fleet?: FleetHost | undefined;
}

/** Deletes the row (with `entry` audited), then the platform's file and the unshared cache file. */
export async function removeImage(
  deps: RemovalDeps,
  row: GatewayImagesTable,
  entry: GatewayAuditEntry,
): Promise<boolean> {
  if (!(await deps.store.delete(row, entry, deps.audit))) return false;
  const platform = deps.config.platforms[row.platform];
  const log = deps.log.child({ image: row.image, platform: row.platform });
  if (row.path !== null && platform !== undefined) {
    const others = await deps.store.db
      .selectFrom('gateway_images')
      .select('image')
      .where('platform', '=', row.platform)
      .where('path', '=', row.path)
      .executeTakeFirst();
    if (others === undefined) {
      await Promise.resolve()
        .then(() => deliveryFor(platform, deps.fleet).remove(row.path as string))
        .catch((err: unknown) =>
          log.error(
            { err, path: row.path },
            'could not remove the image from its platform; remove it by hand',
          ),
        );
    }
  }
  if (row.content_id !== null && (await deps.store.usersOfContent(row.content_id)) === 0) {
    await conversionCacheOf(deps.config).forget(row.content_id);
    await rm(cachedImagePath(deps.config, row.content_id), { force: true });
  }
  return true;
}

/** Removes every image unused for longer than the expiration timeout; returns how many. */
export async function sweepExpired(deps: RemovalDeps, clock: Clock): Promise<number> {
  const timeout = deps.config.expirationTimeoutMs;
  if (timeout <= 0) return 0;
  const before = new Date(clock.now().getTime() - timeout).toISOString();
  let removed = 0;
  for (const row of await deps.store.unusedSince(before)) {
    const done = await removeImage(deps, row, {
      actorType: 'system',
      actorId: 'gateway-expiry',
      action: 'image.expire',
      subjectType: 'image',
      subjectId: subjectOf(row),
      details: { id: row.content_id, path: row.path, lastUsedAt: row.last_used_at },
    });
    if (done) removed++;
  }
  if (removed > 0) deps.log.info({ removed }, 'expired images removed');
  return removed;
}
