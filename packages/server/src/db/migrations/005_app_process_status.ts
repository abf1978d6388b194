import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Per device and app, how the running release's process stands as the agent last reported it
 * (AppProcessStatus as JSON: state, since, restarts, last exit), shown by `devices apps`.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema.alterTable('device_apps').addColumn('process_status', 'text').execute();
}
