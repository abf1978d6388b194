import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Per device, the state version whose assignments the director has yet to sign, or null. Written in
 * the assignment's transaction and cleared once the director metadata was re-signed, so that a
 * server stopped between the two re-signs at its next start (docs/architecture.md "Assignments").
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema.alterTable('devices').addColumn('director_pending', 'integer').execute();
}
