import type { Kysely } from 'kysely';

/**
 * `device_apps.previous`: the release a device committed before its current one, which it may roll
 * back to; a device may read the objects of its desired, current and previous releases (objects/access.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('device_apps').addColumn('previous', 'text').execute();
}
