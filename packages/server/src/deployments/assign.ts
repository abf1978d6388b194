/**
 * Assignments on behalf of another module's transaction (staged rollouts, docs/rollouts.md): the
 * caller holds its own row locks and records its own state in the same transaction, so an
 * assignment and the rollout's record of it commit together or not at all. After the commit the
 * caller announces them (director re-sign, `state-changed`, `device.assigned`), as `deploy` does.
 */
import { ServerCommands } from '@flotilla/protocol';
import type { Db, ServerContext } from '../context.js';
import { lockRows } from '../db/write-transaction.js';
import type { DeployServices } from './service.js';
import { assignInTransaction } from './service.js';

export interface AssignedDevice {
  deviceId: string;
  stateVersion: number;
}

/**
 * Assigns `targetPath` to those of `deviceIds` still accepted (their rows locked in id order);
 * returns them with their new state versions.
 */
export async function assignDevicesInTransaction(
  ctx: ServerContext,
  trx: Db,
  deviceIds: readonly string[],
  app: string,
  targetPath: string,
  rollout: string,
): Promise<AssignedDevice[]> {
  if (deviceIds.length === 0) return [];
  const rows = await lockRows(
    trx
      .selectFrom('devices')
      .select(['id', 'status'])
      .where('id', 'in', [...deviceIds])
      .orderBy('id'),
    ctx.dialect,
  ).execute();
  const out: AssignedDevice[] = [];
  for (const row of rows) {
    if (row.status !== 'accepted') continue;
    out.push({
      deviceId: row.id,
      stateVersion: await assignInTransaction(ctx, trx, row.id, app, targetPath, rollout),
    });
  }
  return out;
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
  if (row.current === null)
    await trx.deleteFrom('device_apps').where('device_id', '=', deviceId).where('app', '=', app).execute();
  else
    await trx
      .updateTable('device_apps')
      .set({
        desired: row.current,
        rollout: null,
        phase: 'committed',
        bytes_done: null,
        bytes_total: null,
        bytes_fetched: null,
        error: null,
        updated_at: ctx.clock.now().toISOString(),
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

/**
 * After the commit: re-signs each device's director targets, tells it over its WebSocket and emits
 * `device.assigned` (when `assigned`). A failed re-sign stays marked and is retried before the
 * device's next director read.
 */
export async function announceAssignments(
  svc: DeployServices,
  changed: readonly AssignedDevice[],
  assigned?: { app: string; targetPath: string; rollout: string },
  /** Stops early (a shutdown): the re-sign markers cover the rest at the next start or read. */
  signal?: AbortSignal,
): Promise<void> {
  for (const { deviceId } of changed) {
    if (signal?.aborted) return;
    await svc.directors.sync(deviceId).catch((err: unknown) => {
      svc.ctx.log.warn(
        { err, deviceId },
        'director re-sign after an assignment failed; retried on the next read',
      );
    });
  }
  for (const { deviceId, stateVersion } of changed) {
    svc.devices.presence.send(deviceId, ServerCommands.stateChanged, { stateVersion });
    if (assigned) svc.events.emit({ type: 'device.assigned', deviceId, ...assigned, stateVersion });
  }
}
