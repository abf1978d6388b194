import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * A rollout's devices per wave and phase, kept in its row (docs/rollouts.md "Failure and
 * recovery"): JSON written in the same transaction as each device's change of phase, under the
 * rollout's row lock, so the gates and `rollout show` read them instead of counting the devices.
 * Null for a rollout started before this migration: counted from its devices at its next change.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema.alterTable('rollouts').addColumn('counts', 'text').execute();
}
