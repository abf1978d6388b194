/**
 * Deployments: assigning a signed release to devices. Per device, the director's targets are
 * re-signed naming every app's assigned release (the new one replacing the app's previous), the
 * device_apps row records the assignment, the device's state_version is bumped, and the device is
 * told over its WebSocket.
 */
import { KeyedSerialQueue, randomId } from '@flotilla/node-kit';
import { FlotillaError, ServerCommands } from '@flotilla/protocol';
import type { DeployRequest, DeployResponse, DeployStatus, DeviceAppList, Release } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import type { DeviceRuntime } from '../devices/index.js';
import { compileFilter } from '../devices/index.js';
import type { Trust } from '../releases/trust.js';
import { getRelease } from '../releases/service.js';
import type { Creator } from '../releases/service.js';
import { missingError, sealSecretsForDevice } from '../secrets/index.js';
import type { SecretVault } from '../secrets/index.js';
import { toDeviceApp, toStatusDevice } from './rows.js';

export interface DeployServices {
  ctx: ServerContext;
  trust: Trust;
  devices: DeviceRuntime;
  /** Seals release secrets to each assigned device (docs/security.md "Secrets in runtime config"). */
  vault: SecretVault;
}

export async function deploy(
  svc: DeployServices,
  input: DeployRequest,
  actor: Creator,
): Promise<DeployResponse> {
  const { ctx } = svc;
  if ((input.deviceId === undefined) === (input.filter === undefined))
    throw new FlotillaError('FLT_VALIDATION', 'give exactly one of deviceId or filter');
  const release = await getRelease(ctx.db, input.app, input.version);
  if (!release.signed) throw unsignedError(release);
  const missing = (release.secrets ?? []).filter((s) => !s.stored).map((s) => s.name);
  if (missing.length > 0) throw missingError(release.app, release.version, missing);
  const deviceIds = await selectDevices(svc, input);
  const rollout = randomId('dep_', 8);
  for (const deviceId of deviceIds) await assignOne(svc, deviceId, release.app, release.targetPath, rollout);
  await ctx.audit.record({
    actorType: 'user',
    actorId: actor.userId,
    action: 'deployment.create',
    subjectType: 'release',
    subjectId: `${release.app}@${release.version}`,
    sourceIp: actor.sourceIp,
    details: {
      rollout,
      devices: deviceIds.length,
      ...(input.deviceId !== undefined ? { deviceId: input.deviceId } : { filter: input.filter }),
    },
  });
  return { app: release.app, version: release.version, devices: deviceIds };
}

async function selectDevices(svc: DeployServices, input: DeployRequest): Promise<string[]> {
  const { ctx } = svc;
  if (input.deviceId !== undefined) {
    const row = await ctx.db
      .selectFrom('devices')
      .select('status')
      .where('id', '=', input.deviceId)
      .executeTakeFirst();
    if (!row) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${input.deviceId}`);
    if (row.status !== 'accepted')
      throw new FlotillaError(
        'FLT_DEVICE_STATE_CONFLICT',
        `device ${input.deviceId} is ${row.status}, not accepted`,
        {
          details: { status: row.status },
        },
      );
    return [input.deviceId];
  }
  const where = compileFilter(input.filter ?? '', {
    dialect: ctx.dialect,
    now: ctx.clock.now(),
    offlineAfterMs: ctx.config.offlineAfterMs,
    onlineIds: svc.devices.presence.onlineIds(),
  });
  const rows = await ctx.db
    .selectFrom('devices')
    .select('id')
    .where('status', '=', 'accepted')
    .where(where)
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

const locks = new WeakMap<object, KeyedSerialQueue>();

/** One lock table per server (keyed by its trust wiring, which lives as long as the app). */
function assignmentLocks(svc: DeployServices): KeyedSerialQueue {
  let mutex = locks.get(svc.trust);
  if (!mutex) {
    mutex = new KeyedSerialQueue();
    locks.set(svc.trust, mutex);
  }
  return mutex;
}

async function assignOne(
  svc: DeployServices,
  deviceId: string,
  app: string,
  targetPath: string,
  rollout: string,
) {
  // Reading the device's other apps and re-signing its director targets must not interleave with
  // another deployment to the same device, or one assignment would be lost.
  return assignmentLocks(svc).run(deviceId, async () => {
    const { ctx } = svc;
    const others = await ctx.db
      .selectFrom('device_apps')
      .select(['desired', 'rollout'])
      .where('device_id', '=', deviceId)
      .where('app', '!=', app)
      .where('desired', 'is not', null)
      .execute();
    const assignments = [
      ...others.map((o) => ({ path: o.desired!, ...(o.rollout !== null && { rollout: o.rollout }) })),
      { path: targetPath, rollout },
    ];
    // Each release's secrets sealed to this device alone, inside the target its director signs.
    const sealed = [];
    for (const a of assignments) {
      const sealedSecrets = await sealSecretsForDevice(ctx, svc.vault, deviceId, a.path);
      sealed.push(sealedSecrets === undefined ? a : { ...a, sealedSecrets });
    }
    await svc.trust.director.assign(deviceId, sealed);
    const now = ctx.clock.now().toISOString();
    const stateVersion = await ctx.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('device_apps')
        .values({
          device_id: deviceId,
          app,
          desired: targetPath,
          rollout,
          phase: 'assigned',
          updated_at: now,
        })
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
      const row = await trx
        .updateTable('devices')
        .set((eb) => ({ state_version: eb('state_version', '+', 1) }))
        .where('id', '=', deviceId)
        .returning('state_version')
        .executeTakeFirstOrThrow();
      return Number(row.state_version);
    });
    svc.devices.presence.send(deviceId, ServerCommands.stateChanged, { stateVersion });
  });
}

export async function requireDevice(ctx: ServerContext, deviceId: string): Promise<void> {
  const row = await ctx.db.selectFrom('devices').select('id').where('id', '=', deviceId).executeTakeFirst();
  if (!row) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${deviceId}`);
}

export async function deviceApps(ctx: ServerContext, deviceId: string): Promise<DeviceAppList> {
  await requireDevice(ctx, deviceId);
  const rows = await ctx.db
    .selectFrom('device_apps')
    .selectAll()
    .where('device_id', '=', deviceId)
    .orderBy('app')
    .execute();
  return { items: rows.map(toDeviceApp) };
}

export async function deployStatus(ctx: ServerContext, app: string, version: string): Promise<DeployStatus> {
  const release = await getRelease(ctx.db, app, version);
  const rows = await ctx.db
    .selectFrom('device_apps')
    .selectAll()
    .where('app', '=', app)
    .where((eb) => eb.or([eb('desired', '=', release.targetPath), eb('current', '=', release.targetPath)]))
    .orderBy('device_id')
    .execute();
  const phases: Record<string, number> = {};
  for (const row of rows) {
    const phase = row.desired === release.targetPath ? (row.phase ?? 'assigned') : 'superseded';
    phases[phase] = (phases[phase] ?? 0) + 1;
  }
  return { app, version, targetPath: release.targetPath, phases, devices: rows.map(toStatusDevice) };
}

/** Sends `rollback` or `restart` for one app to a connected device. */
export async function sendAppAction(
  svc: DeployServices,
  deviceId: string,
  app: string,
  action: 'rollback' | 'restart',
  actor: Creator,
): Promise<void> {
  const { ctx } = svc;
  await requireDevice(ctx, deviceId);
  const row = await ctx.db
    .selectFrom('device_apps')
    .select('app')
    .where('device_id', '=', deviceId)
    .where('app', '=', app)
    .executeTakeFirst();
  if (!row) throw new FlotillaError('FLT_NOT_FOUND', `device ${deviceId} has no app ${app}`);
  if (!svc.devices.presence.send(deviceId, action, { app }))
    throw new FlotillaError(
      'FLT_DEVICE_OFFLINE',
      `device ${deviceId} is not connected to this server; try again when it is online`,
    );
  await ctx.audit.record({
    actorType: 'user',
    actorId: actor.userId,
    action: `device.app.${action}`,
    subjectType: 'device',
    subjectId: deviceId,
    sourceIp: actor.sourceIp,
    details: { app },
  });
}

/**
 * FLT_RELEASE_UNSIGNED with the command that signs it: `flotilla release push` of the same tree
 * (app, version, runtime, config) adds the release to the offline-signed targets and does nothing
 * else when the release already exists.
 */
function unsignedError(release: Release): FlotillaError {
  const runtime = release.runtime === 'files' ? '' : ` --runtime ${release.runtime}`;
  const config = Object.keys(release.config).length > 0 ? ' --config-file <the same config>' : '';
  return new FlotillaError(
    'FLT_RELEASE_UNSIGNED',
    `${release.app}@${release.version} is not in the signed targets yet; sign it by pushing the same ` +
      `tree again: flotilla release push <dir> --app ${release.app} --version ${release.version}${runtime}${config}`,
    { details: { targetPath: release.targetPath } },
  );
}
