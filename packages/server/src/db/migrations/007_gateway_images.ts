import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * The image gateway's state (docs/gateway.md): one row per image on a platform, and the import
 * jobs that produce them. The gateway package reads and writes these tables through the database
 * the server (or `flotilla gateway worker`) opened; Redis only carries job ids.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const big = dialect === 'postgres' ? 'bigint' : 'integer';
  await db.schema
    .createTable('gateway_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('image', 'text', (c) => c.notNull())
    .addColumn('arch', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('phase', 'text', (c) => c.notNull())
    .addColumn('progress', 'real', (c) => c.notNull().defaultTo(0))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('worker', 'text')
    .addColumn('error', 'text')
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .execute();
  await db.schema.createIndex('gateway_jobs_state_idx').on('gateway_jobs').column('state').execute();

  await db.schema
    .createTable('gateway_images')
    .addColumn('platform', 'text', (c) => c.notNull())
    .addColumn('image', 'text', (c) => c.notNull())
    .addColumn('arch', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('job_id', 'text')
    .addColumn('content_id', 'text')
    .addColumn('manifest_digest', 'text')
    .addColumn('path', 'text')
    .addColumn('size_bytes', big)
    .addColumn('private', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('users', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('groups', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('ready_at', 'text')
    .addColumn('last_used_at', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addPrimaryKeyConstraint('gateway_images_pk', ['platform', 'image', 'arch'])
    .execute();
  await db.schema
    .createIndex('gateway_images_used_idx')
    .on('gateway_images')
    .column('last_used_at')
    .execute();
}
