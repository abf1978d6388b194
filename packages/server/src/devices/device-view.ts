/** Device rows → the wire `Device` (with tags, facts and presence), loaded in three queries per page. */
import type { Device } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db } from '../context.js';
import type { Dialect } from '../db/dialect.js';
import type { DevicesTable } from '../db/schema.js';
import { rowsToFacts } from './facts.js';

/** A device as shown to operators (the director's re-sign marker is the deployments module's). */
export type DeviceRow = Omit<Selectable<DevicesTable>, 'director_pending'>;

/** What the views need to know about presence on this server. */
export interface PresenceView {
  /** Devices online here: an open WebSocket, or seen but not yet flushed to the database. */
  onlineIds(): string[];
  /** The newest last-seen time known in memory, if newer than the database's. */
  pendingLastSeen(deviceId: string): string | undefined;
  isConnected(deviceId: string): boolean;
}

export interface ViewContext {
  db: Db;
  presence: PresenceView;
  now: Date;
  offlineAfterMs: number;
}

export const DEVICE_COLUMNS = [
  'devices.id',
  'devices.public_key',
  'devices.status',
  'devices.hostname',
  'devices.registration_key_id',
  'devices.enrolled_at',
  'devices.status_changed_at',
  'devices.status_reason',
  'devices.last_seen_at',
  'devices.agent_version',
  'devices.state_version',
] as const;

/**
 * One device row. With `lock` (inside a transaction), PostgreSQL holds the row until commit so that
 * concurrent replacements of the device's tags or facts queue up instead of colliding; SQLite
 * transactions are serialized already (and have no FOR UPDATE).
 */
export async function loadDeviceRow(db: Db, id: string, lock?: Dialect): Promise<DeviceRow | undefined> {
  return db
    .selectFrom('devices')
    .select(DEVICE_COLUMNS)
    .where('devices.id', '=', id)
    .$if(lock === 'postgres', (qb) => qb.forUpdate())
    .executeTakeFirst();
}

export async function loadTags(db: Db, deviceId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('device_tags')
    .select('tag')
    .where('device_id', '=', deviceId)
    .orderBy('tag')
    .execute();
  return rows.map((r) => r.tag);
}

/** The wire form of `rows`, in the same order. */
export async function toDevices(ctx: ViewContext, rows: readonly DeviceRow[]): Promise<Device[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const [tagRows, factRows] = await Promise.all([
    ctx.db
      .selectFrom('device_tags')
      .select(['device_id', 'tag'])
      .where('device_id', 'in', ids)
      .orderBy('tag')
      .execute(),
    ctx.db
      .selectFrom('device_facts')
      .select(['device_id', 'name', 'ordinal', 'value_type', 'value_text', 'value_num'])
      .where('device_id', 'in', ids)
      .execute(),
  ]);
  const tagsOf = groupBy(tagRows, (r) => r.device_id);
  const factsOf = groupBy(factRows, (r) => r.device_id);
  const cutoff = new Date(ctx.now.getTime() - ctx.offlineAfterMs).toISOString();
  return rows.map((row) => {
    const pending = ctx.presence.pendingLastSeen(row.id);
    const lastSeenAt =
      pending !== undefined && (row.last_seen_at === null || pending > row.last_seen_at)
        ? pending
        : row.last_seen_at;
    return {
      id: row.id,
      status: row.status,
      publicKey: row.public_key,
      hostname: row.hostname,
      tags: (tagsOf.get(row.id) ?? []).map((t) => t.tag),
      facts: rowsToFacts(factsOf.get(row.id) ?? []),
      online: ctx.presence.isConnected(row.id) || (lastSeenAt !== null && lastSeenAt >= cutoff),
      lastSeenAt,
      enrolledAt: row.enrolled_at,
      registrationKeyId: row.registration_key_id,
      stateVersion: Number(row.state_version),
    };
  });
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const map = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = map.get(k);
    if (list) list.push(item);
    else map.set(k, [item]);
  }
  return map;
}
