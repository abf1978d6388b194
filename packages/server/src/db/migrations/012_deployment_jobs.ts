import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Deployments as jobs (docs/architecture.md "Assignments"): the devices a deployment selected are
 * recorded when it is created; batches then assign them in device-id order, each batch in one
 * transaction that also advances the job's cursor, so a server restarted mid-job carries on after
 * the last committed batch and never assigns a device twice.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema
    .createTable('deployment_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('app', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('target_path', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('total', 'integer', (c) => c.notNull())
    .addColumn('assigned', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('processed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_device_id', 'text')
    .addColumn('error', 'text')
    .addColumn('actor_id', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .execute();
  await db.schema.createIndex('deployment_jobs_state_idx').on('deployment_jobs').column('state').execute();
  await db.schema
    .createIndex('deployment_jobs_release_idx')
    .on('deployment_jobs')
    .columns(['app', 'version'])
    .execute();
  await db.schema
    .createTable('deployment_job_devices')
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('deployment_job_devices_pk', ['job_id', 'device_id'])
    .execute();
}
