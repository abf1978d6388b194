/**
 * A transaction that holds the database's write lock from its first statement, for read-then-write
 * work that several server processes may do at once. On SQLite it is `BEGIN IMMEDIATE` (the write
 * lock before any read, so no other writer interleaves); on PostgreSQL an ordinary transaction in
 * which the caller takes row locks (`lockRows`: SELECT … FOR UPDATE, in a stable order).
 */
import { sql } from 'kysely';
import type { Kysely, SelectQueryBuilder } from 'kysely';
import type { Dialect } from './dialect.js';
import type { Database, Db } from './schema.js';

export async function writeTransaction<T>(
  db: Kysely<Database>,
  dialect: Dialect,
  work: (trx: Db) => Promise<T>,
): Promise<T> {
  if (dialect === 'postgres') return db.transaction().execute(work);
  // Kysely's SQLite transactions begin DEFERRED; the connection is held for the whole work.
  return db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    let result: T;
    try {
      result = await work(conn);
    } catch (e) {
      // SQLite may have rolled back by itself (SQLITE_FULL, SQLITE_IOERR): keep the first error.
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw e;
    }
    await sql`commit`.execute(conn);
    return result;
  });
}

/** Adds FOR UPDATE on PostgreSQL (rows stay locked until the transaction ends); SQLite's write lock covers it. */
export function lockRows<DB, TB extends keyof DB, O>(
  query: SelectQueryBuilder<DB, TB, O>,
  dialect: Dialect,
): SelectQueryBuilder<DB, TB, O> {
  return dialect === 'postgres' ? query.forUpdate() : query;
}
