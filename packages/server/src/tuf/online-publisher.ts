/**
 * Online signing shared by the image repository and the director: snapshot and timestamp are built
 * from what is stored, signed with the server's online keys, and re-signed before they expire.
 */
import { FlotillaError } from '@flotilla/protocol';
import {
  metaFileFor,
  newSnapshot,
  newTimestamp,
  parseMetadata,
  serializeMetadata,
  signMetadata,
} from '@flotilla/node-kit';
import type { MetadataStore, StoredRole } from './metadata-store.js';
import type { OnlineKeys } from './online-keys.js';
import { expiresAfter, needsRefresh } from './expiry.js';
import type { TufExpiryPolicy } from './expiry.js';

export interface PublisherContext {
  store: MetadataStore;
  keys: OnlineKeys;
  policy: TufExpiryPolicy;
}

/**
 * How many superseded snapshot (and director targets) versions stay served, for a device that read the
 * timestamp just before a newer one was published. Older timestamps are never served (only
 * `timestamp.json` is), so only the latest is kept.
 */
export const KEEP_SUPERSEDED_VERSIONS = 3;

export interface Published {
  snapshot?: number;
  timestamp: number;
}

/** The latest stored bytes of a role with their version, or undefined. */
export async function latest(
  store: MetadataStore,
  repo: string,
  role: StoredRole,
): Promise<{ version: number; bytes: Buffer } | undefined> {
  const version = await store.latestVersion(repo, role);
  if (version === undefined) return undefined;
  const bytes = await store.get(repo, role, version);
  if (!bytes) throw new FlotillaError('FLT_INTERNAL', `${repo}: ${version}.${role}.json vanished`);
  return { version, bytes };
}

/** Snapshot v(N+1) naming the latest targets, then a timestamp naming that snapshot. */
export async function publishSnapshotAndTimestamp(
  ctx: PublisherContext,
  repo: string,
  now: Date,
): Promise<Published> {
  const targets = await latest(ctx.store, repo, 'targets');
  if (!targets) throw new FlotillaError('FLT_TUF_NOT_INITIALIZED', `${repo} has no targets metadata yet`);
  const version = ((await ctx.store.latestVersion(repo, 'snapshot')) ?? 0) + 1;
  // The delegated gateway role (image repository only) is listed once it was ever signed.
  const gateway = await latest(ctx.store, repo, 'gateway');
  const snapshot = newSnapshot({
    version,
    expires: expiresAfter(now, ctx.policy.snapshotSeconds),
    targetsMeta: metaFileFor(targets.bytes, targets.version),
    ...(gateway && { delegatedMeta: { gateway: metaFileFor(gateway.bytes, gateway.version) } }),
  });
  await signMetadata(snapshot, [ctx.keys.snapshot]);
  const bytes = serializeMetadata(snapshot);
  await ctx.store.put(repo, 'snapshot', version, bytes);
  const timestamp = await publishTimestamp(ctx, repo, { version, bytes }, now);
  return { snapshot: version, timestamp };
}

/** Timestamp v(N+1) naming `snapshot`. */
export async function publishTimestamp(
  ctx: PublisherContext,
  repo: string,
  snapshot: { version: number; bytes: Buffer },
  now: Date,
): Promise<number> {
  const version = ((await ctx.store.latestVersion(repo, 'timestamp')) ?? 0) + 1;
  const timestamp = newTimestamp({
    version,
    expires: expiresAfter(now, ctx.policy.timestampSeconds),
    snapshotMeta: metaFileFor(snapshot.bytes, snapshot.version),
  });
  await signMetadata(timestamp, [ctx.keys.timestamp]);
  await ctx.store.put(repo, 'timestamp', version, serializeMetadata(timestamp));
  await ctx.store.deleteBelow(repo, 'timestamp', version);
  await ctx.store.deleteBelow(repo, 'snapshot', snapshot.version - KEEP_SUPERSEDED_VERSIONS);
  return version;
}

/**
 * Re-signs the online roles of `repo` that have less than the policy's fraction of their lifetime
 * left. Returns what was published, or undefined when nothing needed renewal.
 */
export async function refreshOnlineRoles(
  ctx: PublisherContext,
  repo: string,
  now: Date,
): Promise<Published | undefined> {
  const snapshot = await latest(ctx.store, repo, 'snapshot');
  if (!snapshot)
    return (await latest(ctx.store, repo, 'targets'))
      ? publishSnapshotAndTimestamp(ctx, repo, now)
      : undefined;
  if (
    needsRefresh(
      parseMetadata('snapshot', snapshot.bytes).signed.expires,
      ctx.policy.snapshotSeconds,
      now,
      ctx.policy,
    )
  ) {
    return publishSnapshotAndTimestamp(ctx, repo, now);
  }
  const timestamp = await latest(ctx.store, repo, 'timestamp');
  if (
    !timestamp ||
    needsRefresh(
      parseMetadata('timestamp', timestamp.bytes).signed.expires,
      ctx.policy.timestampSeconds,
      now,
      ctx.policy,
    )
  ) {
    return { timestamp: await publishTimestamp(ctx, repo, snapshot, now) };
  }
  return undefined;
}

const SERVED_NAME = /^(?:(root|timestamp)|([1-9][0-9]{0,15})\.(root|snapshot|targets|gateway))\.json$/;

/** Whether a metadata file name may be cached forever (consistent snapshots never change). */
export function isImmutableName(name: string): boolean {
  return /^[1-9][0-9]{0,15}\./.test(name);
}

/**
 * The bytes served for a metadata file name: `root.json` and `timestamp.json` (latest), and the
 * consistent-snapshot names `N.root.json`, `N.snapshot.json`, `N.targets.json`, `N.gateway.json`. `rootRepo` holds the
 * roots (the director's root is shared by every device). Undefined for anything else.
 */
export async function readServedFile(
  store: MetadataStore,
  repo: string,
  rootRepo: string,
  name: string,
): Promise<Buffer | undefined> {
  const m = SERVED_NAME.exec(name);
  if (!m) return undefined;
  const [, unversioned, versionText, versionedRole] = m;
  if (unversioned !== undefined) {
    const role = unversioned as 'root' | 'timestamp';
    return (await latest(store, role === 'root' ? rootRepo : repo, role))?.bytes;
  }
  const version = Number(versionText);
  if (!Number.isSafeInteger(version)) return undefined;
  const role = versionedRole as 'root' | 'snapshot' | 'targets' | 'gateway';
  return store.get(role === 'root' ? rootRepo : repo, role, version);
}
