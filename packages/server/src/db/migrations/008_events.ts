import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * The event log (docs/events.md): every domain event and audit entry with a sequence number that
 * only grows, the order in which `GET /api/v1/events` delivers them. `seq` is assigned only while
 * the log's writer holds the database's write lock (SQLite) or an advisory lock (PostgreSQL), so
 * the order of the numbers is the order of the commits. Audit entries first land in
 * `event_outbox`, in the transaction that made the change, and move into the log once committed.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  for (const [table, key] of [
    ['events', 'seq'],
    ['event_outbox', 'id'],
  ] as const) {
    await db.schema
      .createTable(table)
      .addColumn(key, dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
        dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
      )
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('device_id', 'text')
      .addColumn('app', 'text')
      .addColumn('rollout', 'text')
      .addColumn('payload', 'text', (c) => c.notNull())
      .execute();
  }
  await db.schema.createIndex('events_at_idx').on('events').column('at').execute();
  await db.schema.createIndex('events_device_idx').on('events').columns(['device_id', 'seq']).execute();
}
