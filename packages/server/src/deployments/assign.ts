/**
 * Assignments inside a write transaction: a deployment's batches (jobs.ts) and, on behalf of
 * another module, staged rollouts (docs/rollouts.md): the caller holds its own row locks and
 * records its own state in the same transaction, so an assignment and the rollout's record of it
 * commit together or not at all. A batch of devices is recorded with two statements whatever its
 * size (one on PostgreSQL, its ids passed as one array parameter). After the commit the caller announces them through `DeploymentJobs.announce`, as `deploy`
 * does: the devices are told at once and their director metadata is re-signed in the background.
 */
import { sql } from 'kysely';
import type { Db, ServerContext } from '../context.js';
import { lockRows } from '../db/write-transaction.js';

export interface AssignedDevice {
  deviceId: string;
  stateVersion: number;
}

/**
 * Assigns `targetPath` to those of `deviceIds` still accepted (their rows locked in id order);
 * returns them, in id order, with their new state versions.
 */
export async function assignDevicesInTransaction(
  ctx: ServerContext,
  trx: Db,
  deviceIds: readonly string[],
  app: string,
  targetPath: string,
  rollout: string,
): Promise<AssignedDevice[]> {
  const accepted = await lockAcceptedIds(ctx, trx, deviceIds);
  return assignMany(ctx, trx, accepted, app, targetPath, rollout);
}

/** Locks the devices' rows (in id order, so concurrent assignments never deadlock); the accepted ones. */
export async function lockAcceptedIds(
  ctx: ServerContext,
  trx: Db,
  ids: readonly string[],
): Promise<string[]> {
  if (ids.length === 0) return [];
  if (ctx.dialect === 'postgres') {
    // One array parameter instead of one per id (cheaper to build, send and plan).
    const locked = await sql<{ id: string; status: string }>`
      SELECT id, status FROM devices WHERE id = ANY(${[...ids]}::text[]) ORDER BY id FOR UPDATE`.execute(trx);
    return locked.rows.filter((r) => r.status === 'accepted').map((r) => r.id);
  }
  const rows = await lockRows(
    trx
      .selectFrom('devices')
      .select(['id', 'status'])
      .where('id', 'in', [...ids])
      .orderBy('id'),
    ctx.dialect,
  ).execute();
  return rows.filter((r) => r.status === 'accepted').map((r) => r.id);
}

/**
 * Records the assignment of every device given (one upsert and one update for the batch), bumps
 * each device's state version and marks its director metadata for re-signing
 * (`director_pending`: re-signed after the commit, before the device's next read, or at the next
 * start). Returns the devices in id order.
 */
export async function assignMany(
  ctx: ServerContext,
  trx: Db,
  deviceIds: readonly string[],
  app: string,
  targetPath: string,
  rollout: string,
): Promise<AssignedDevice[]> {
  if (deviceIds.length === 0) return [];
  const now = ctx.clock.now().toISOString();
  const byId = (a: AssignedDevice, b: AssignedDevice) =>
    a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0;
  if (ctx.dialect === 'postgres') {
    // One statement (one round trip) for the batch: the upsert runs as a data-modifying CTE.
    const ids = [...deviceIds];
    const result = await sql<{ id: string; state_version: number | string }>`
      WITH assigned AS (
        INSERT INTO device_apps (device_id, app, desired, rollout, phase, updated_at)
        SELECT id, ${app}, ${targetPath}, ${rollout}, 'assigned', ${now}
        FROM unnest(${ids}::text[]) AS ids(id)
        ON CONFLICT (device_id, app) DO UPDATE SET
          desired = excluded.desired, rollout = excluded.rollout, phase = 'assigned',
          bytes_done = NULL, bytes_total = NULL, bytes_fetched = NULL, error = NULL,
          updated_at = excluded.updated_at
      )
      UPDATE devices SET state_version = state_version + 1, director_pending = state_version + 1
      WHERE id = ANY(${ids}::text[])
      RETURNING id, state_version`.execute(trx);
    return result.rows.map((r) => ({ deviceId: r.id, stateVersion: Number(r.state_version) })).sort(byId);
  }
  await trx
    .insertInto('device_apps')
    .values(
      deviceIds.map((deviceId) => ({
        device_id: deviceId,
        app,
        desired: targetPath,
        rollout,
        phase: 'assigned' as const,
        updated_at: now,
      })),
    )
    .onConflict((oc) =>
      oc.columns(['device_id', 'app']).doUpdateSet({
        desired: targetPath,
        rollout,
        phase: 'assigned',
        bytes_done: null,
        bytes_total: null,
        bytes_fetched: null,
        error: null,
        updated_at: now,
      }),
    )
    .execute();
  const rows = await trx
    .updateTable('devices')
    .set((eb) => ({
      state_version: eb('state_version', '+', 1),
      director_pending: eb('state_version', '+', 1),
    }))
    .where('id', 'in', [...deviceIds])
    .returning(['id', 'state_version'])
    .execute();
  return rows.map((r) => ({ deviceId: r.id, stateVersion: Number(r.state_version) })).sort(byId);
}

/**
 * Takes back an assignment the device has not started on (phase still `assigned`): the app's
 * desired release returns to what the device runs (or the app is dropped if it runs none). Returns
 * the device's new state version, or null when the device had moved on (nothing changed).
 */
export async function unassignInTransaction(
  ctx: ServerContext,
  trx: Db,
  deviceId: string,
  app: string,
  rollout: string,
): Promise<number | null> {
  const row = await trx
    .selectFrom('device_apps')
    .select(['current', 'phase', 'rollout'])
    .where('device_id', '=', deviceId)
    .where('app', '=', app)
    .executeTakeFirst();
  if (!row || row.rollout !== rollout || row.phase !== 'assigned') return null;
  return revertAppToCurrent(trx, deviceId, app, row.current, ctx.clock.now().toISOString());
}

/**
 * Points a device's app back at the release it runs (`current`), or drops the app when it runs
 * none, and bumps the device's state version so that it is told. Returns the new state version.
 */
export async function revertAppToCurrent(
  trx: Db,
  deviceId: string,
  app: string,
  current: string | null,
  now: string,
): Promise<number> {
  if (current === null)
    await trx.deleteFrom('device_apps').where('device_id', '=', deviceId).where('app', '=', app).execute();
  else
    await trx
      .updateTable('device_apps')
      .set({
        desired: current,
        rollout: null,
        phase: 'committed',
        bytes_done: null,
        bytes_total: null,
        bytes_fetched: null,
        error: null,
        updated_at: now,
      })
      .where('device_id', '=', deviceId)
      .where('app', '=', app)
      .execute();
  const device = await trx
    .updateTable('devices')
    .set((eb) => ({
      state_version: eb('state_version', '+', 1),
      director_pending: eb('state_version', '+', 1),
    }))
    .where('id', '=', deviceId)
    .returning('state_version')
    .executeTakeFirstOrThrow();
  return Number(device.state_version);
}
