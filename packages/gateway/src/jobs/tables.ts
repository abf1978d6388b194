/**
 * The gateway's tables as Kysely sees them; the server's migration 007_gateway_images creates them.
 * Portable across SQLite and PostgreSQL: ISO-8601 UTC text timestamps, 0/1 booleans, JSON text.
 */
import { SqliteAdapter, sql } from 'kysely';
import type { Kysely, Transaction } from 'kysely';
import type { ImageJobState, ImageStatus } from '@flotilla/protocol';

export interface GatewayJobsTable {
  id: string;
  platform: string;
  image: string;
  arch: string;
  state: ImageJobState;
  phase: string;
  progress: number;
  attempts: number;
  worker: string | null;
  error: string | null;
  requested_by: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface GatewayImagesTable {
  platform: string;
  image: string;
  arch: string;
  status: ImageStatus;
  job_id: string | null;
  content_id: string | null;
  manifest_digest: string | null;
  path: string | null;
  size_bytes: number | null;
  private: number;
  users: string;
  groups: string;
  created_by: string;
  created_at: string;
  ready_at: string | null;
  last_used_at: string;
  error: string | null;
}

export interface GatewayTables {
  gateway_jobs: GatewayJobsTable;
  gateway_images: GatewayImagesTable;
}

export type GatewayDb = Kysely<GatewayTables>;
export type GatewayTx = Kysely<GatewayTables> | Transaction<GatewayTables>;

/** One audited action; the host (server or worker) writes it to its audit log. */
export interface GatewayAuditEntry {
  actorType: 'user' | 'system';
  actorId: string;
  /** `image.pull`, `image.ready`, `image.failed`, `image.lookup`, `image.remove`, `image.expire`. */
  action: string;
  subjectType: 'image';
  subjectId: string;
  sourceIp?: string | null;
  details?: Record<string, unknown> | null;
}

/** Writes an audit entry, inside `db` when given so it commits with the change it records. */
export type GatewayAudit = (entry: GatewayAuditEntry, db?: GatewayTx) => Promise<void>;

export interface Clock {
  now(): Date;
}

/**
 * A transaction for read-then-write work that several processes may do at once (the server and
 * its workers on one database). SQLite: `BEGIN IMMEDIATE`, so the write lock is held from the
 * first read and no other process's commit can invalidate what was read (a deferred transaction
 * upgrading to a write after another process wrote fails with SQLITE_BUSY_SNAPSHOT, whatever the
 * busy timeout). PostgreSQL: an ordinary transaction (the store's statements lock their rows).
 */
export async function writeTransaction<T>(db: GatewayDb, work: (tx: GatewayTx) => Promise<T>): Promise<T> {
  if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return db.transaction().execute(work);
  return db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    let result: T;
    try {
      result = await work(conn);
    } catch (e) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw e;
    }
    await sql`commit`.execute(conn);
    return result;
  });
}
