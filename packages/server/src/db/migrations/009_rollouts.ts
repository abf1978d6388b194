import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Staged rollouts (docs/rollouts.md): the rollout with its settings and engine state, and one row
 * per device it owns. A device is in at most one active rollout per app: the partial unique index
 * on `(device_id, app) WHERE active = 1` holds that against concurrent servers.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema
    .createTable('rollouts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('app', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('target_path', 'text', (c) => c.notNull())
    .addColumn('filter', 'text', (c) => c.notNull())
    .addColumn('waves', 'text', (c) => c.notNull())
    .addColumn('wave_sizes', 'text', (c) => c.notNull())
    .addColumn('min_success', 'real', (c) => c.notNull())
    .addColumn('max_failure', 'real', (c) => c.notNull())
    .addColumn('soak_seconds', 'integer', (c) => c.notNull())
    .addColumn('approve_waves', 'integer', (c) => c.notNull())
    .addColumn('window', 'text')
    .addColumn('include_new', 'integer', (c) => c.notNull())
    .addColumn('retry', 'integer', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('current_wave', 'integer', (c) => c.notNull())
    .addColumn('approved_wave', 'integer', (c) => c.notNull())
    .addColumn('matched', 'integer', (c) => c.notNull())
    .addColumn('paused_reason', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('rollouts_state_idx').on('rollouts').column('state').execute();

  await db.schema
    .createTable('rollout_devices')
    .addColumn('rollout_id', 'text', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('app', 'text', (c) => c.notNull())
    .addColumn('wave', 'integer', (c) => c.notNull())
    .addColumn('phase', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('detail', 'text')
    .addColumn('since', 'text', (c) => c.notNull())
    .addColumn('retries', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', 'text')
    .addColumn('assigned_at', 'text')
    .addColumn('committed_at', 'text')
    .addColumn('soak_until', 'text')
    .addColumn('soak_restarts', 'integer')
    .addColumn('install_ms', 'integer')
    .addColumn('active', 'integer', (c) => c.notNull())
    .addColumn('acknowledged', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('rollout_devices_pk', ['rollout_id', 'device_id'])
    .execute();
  await db.schema
    .createIndex('rollout_devices_active_idx')
    .unique()
    .on('rollout_devices')
    .columns(['device_id', 'app'])
    .where(sql.ref('active'), '=', 1)
    .execute();
  await db.schema
    .createIndex('rollout_devices_wave_idx')
    .on('rollout_devices')
    .columns(['rollout_id', 'wave', 'phase'])
    .execute();
}
