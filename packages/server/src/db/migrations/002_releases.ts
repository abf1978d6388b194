import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/** Releases, the objects each release references (reference counts for GC), and per-device app state. */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  // Byte counts of large releases exceed 2^31; SQLite's integer is already 64-bit.
  const big = dialect === 'postgres' ? 'bigint' : 'integer';
  await db.schema
    .createTable('releases')
    .addColumn('app', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('runtime', 'text', (c) => c.notNull())
    .addColumn('root_object', 'text', (c) => c.notNull())
    .addColumn('root_length', 'integer', (c) => c.notNull())
    .addColumn('config', 'text', (c) => c.notNull())
    .addColumn('target_path', 'text', (c) => c.notNull().unique())
    .addColumn('files', 'integer', (c) => c.notNull())
    .addColumn('bytes', big, (c) => c.notNull())
    .addColumn('stored_bytes', big, (c) => c.notNull())
    .addColumn('signed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('releases_pk', ['app', 'version'])
    .execute();

  await db.schema
    .createTable('object_refs')
    .addColumn('app', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('object_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('object_refs_pk', ['app', 'version', 'object_id'])
    .addForeignKeyConstraint(
      'object_refs_release_fk',
      ['app', 'version'],
      'releases',
      ['app', 'version'],
      (fk) => fk.onDelete('cascade'),
    )
    .execute();
  await db.schema.createIndex('object_refs_object_idx').on('object_refs').column('object_id').execute();

  await db.schema
    .createTable('device_apps')
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('app', 'text', (c) => c.notNull())
    .addColumn('desired', 'text')
    .addColumn('rollout', 'text')
    .addColumn('current', 'text')
    .addColumn('phase', 'text')
    .addColumn('bytes_done', big)
    .addColumn('bytes_total', big)
    .addColumn('bytes_fetched', big)
    .addColumn('error', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_apps_pk', ['device_id', 'app'])
    .execute();
  await db.schema.createIndex('device_apps_desired_idx').on('device_apps').column('desired').execute();
}
