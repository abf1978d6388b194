/**
 * Several reads that must agree with each other (a rollout's state and its counts, say) while
 * other work commits in between: one transaction that sees one snapshot. On PostgreSQL that is
 * REPEATABLE READ (READ COMMITTED would give each statement its own snapshot); on SQLite any
 * transaction reads one snapshot from its first statement (WAL), and holds the connection.
 */
import type { Kysely } from 'kysely';
import type { Dialect } from './dialect.js';
import type { Database, Db } from './schema.js';

export async function readSnapshot<T>(
  db: Kysely<Database>,
  dialect: Dialect,
  work: (trx: Db) => Promise<T>,
): Promise<T> {
  const trx = db.transaction();
  return (dialect === 'postgres' ? trx.setIsolationLevel('repeatable read') : trx).execute(work);
}
