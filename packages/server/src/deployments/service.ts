/**
 * Deployments: assigning a signed release to devices. One write transaction records the deployment
 * (its selected devices) and its audit entry; batches then assign the devices (jobs.ts: per batch
 * one transaction that records each assignment in `device_apps`, bumps its state_version and marks
 * its director metadata for re-signing), tell them over their WebSocket, emit the domain events and
 * re-sign their director targets from the committed rows (`DirectorSync`) in the background
 * (docs/architecture.md "Assignments").
 */
import { randomId } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import type {
  DeployRequest,
  DeployResponse,
  DeployStatus,
  Deployment,
  DeviceAppList,
  Release,
} from '@flotilla/protocol';
import type { Db, ServerContext } from '../context.js';
import { lockRows, writeTransaction } from '../db/write-transaction.js';
import type { DeviceRuntime } from '../devices/index.js';
import { compileFilter } from '../devices/index.js';
import type { EventBus } from '../events/bus.js';
import type { Trust } from '../releases/trust.js';
import { getRelease } from '../releases/service.js';
import type { Creator } from '../releases/service.js';
import { missingError } from '../secrets/index.js';
import type { DirectorSync } from './director-sync.js';
import type { DeploymentJobs } from './jobs.js';
import { toDeployment } from './jobs.js';
import { toDeviceApp, toStatusDevice } from './rows.js';

export interface DeployServices {
  ctx: ServerContext;
  trust: Trust;
  devices: DeviceRuntime;
  /** Re-signs director metadata from `device_apps` (and seals release secrets to each device). */
  directors: DirectorSync;
  events: EventBus;
  /** Runs deployments' batches in the background (set once at start). */
  jobs: DeploymentJobs;
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
  if (!(await svc.trust.image.target(release.targetPath)))
    throw new FlotillaError(
      'FLT_TUF_TARGET_MISSING',
      `the image repository has no target ${release.targetPath}`,
      { details: { path: release.targetPath } },
    );
  const candidates = await selectDevices(svc, input);
  const id = randomId('dep_', 8);
  const now = ctx.clock.now().toISOString();
  const selected = await writeTransaction(ctx.db, ctx.dialect, async (trx) => {
    // A named device must exist and be accepted now; a filter's devices are checked per batch.
    const deviceIds =
      input.deviceId !== undefined ? await lockAccepted(svc, trx, input, candidates) : candidates;
    await trx
      .insertInto('deployment_jobs')
      .values({
        id,
        app: release.app,
        version: release.version,
        target_path: release.targetPath,
        state: 'running',
        total: deviceIds.length,
        assigned: 0,
        processed: 0,
        last_device_id: null,
        error: null,
        actor_id: actor.userId,
        created_at: now,
        updated_at: now,
        finished_at: null,
      })
      .execute();
    for (let i = 0; i < deviceIds.length; i += INSERT_CHUNK)
      await trx
        .insertInto('deployment_job_devices')
        .values(deviceIds.slice(i, i + INSERT_CHUNK).map((device_id) => ({ job_id: id, device_id })))
        .execute();
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: actor.userId,
        action: 'deployment.create',
        subjectType: 'release',
        subjectId: `${release.app}@${release.version}`,
        sourceIp: actor.sourceIp,
        details: {
          rollout: id,
          devices: deviceIds.length,
          ...(input.deviceId !== undefined ? { deviceId: input.deviceId } : { filter: input.filter }),
        },
      },
      trx,
    );
    return deviceIds;
  });
  // One batch is done before answering (200); more go on in the background (202: poll the job).
  // A small deployment (one device, a few) also has its director metadata signed by then.
  const run = svc.jobs.run(id);
  if (selected.length <= ctx.config.deployBatchSize) await run;
  if (selected.length <= SIGNED_BEFORE_ANSWER) await svc.jobs.signed(id);
  return {
    app: release.app,
    version: release.version,
    devices: selected,
    deployment: await getDeployment(ctx, id),
  };
}

/** Deployments of at most this many devices answer once their director metadata is re-signed. */
const SIGNED_BEFORE_ANSWER = 16;

/** The most recent deployments of a release `deployStatus` lists. */
const STATUS_DEPLOYMENTS = 20;

/** Rows per INSERT of a deployment's selected devices (well under SQLite's bound on parameters). */
const INSERT_CHUNK = 500;

/** One deployment's assignment job; FLT_NOT_FOUND when there is none with that id. */
export async function getDeployment(ctx: ServerContext, id: string): Promise<Deployment> {
  const row = await ctx.db.selectFrom('deployment_jobs').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new FlotillaError('FLT_NOT_FOUND', `no deployment ${id}`);
  return toDeployment(row);
}

/** The devices a filter selects now (locked and checked again in the transaction). */
async function selectDevices(svc: DeployServices, input: DeployRequest): Promise<string[]> {
  const { ctx } = svc;
  if (input.deviceId !== undefined) return [input.deviceId];
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

/**
 * Locks the candidates' device rows (in id order, so that concurrent deployments never deadlock)
 * and keeps those still accepted; a named device must exist and be accepted.
 */
async function lockAccepted(
  svc: DeployServices,
  trx: Db,
  input: DeployRequest,
  candidates: readonly string[],
): Promise<string[]> {
  if (candidates.length === 0) return [];
  const rows = await lockRows(
    trx
      .selectFrom('devices')
      .select(['id', 'status'])
      .where('id', 'in', [...candidates])
      .orderBy('id'),
    svc.ctx.dialect,
  ).execute();
  if (input.deviceId !== undefined) {
    const row = rows[0];
    if (!row) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${input.deviceId}`);
    if (row.status !== 'accepted')
      throw new FlotillaError(
        'FLT_DEVICE_STATE_CONFLICT',
        `device ${input.deviceId} is ${row.status}, not accepted`,
        {
          details: { status: row.status },
        },
      );
  }
  return rows.filter((r) => r.status === 'accepted').map((r) => r.id);
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
  const jobs = await ctx.db
    .selectFrom('deployment_jobs')
    .selectAll()
    .where('app', '=', app)
    .where('version', '=', version)
    .orderBy('created_at', 'desc')
    .limit(STATUS_DEPLOYMENTS)
    .execute();
  return {
    app,
    version,
    targetPath: release.targetPath,
    phases,
    devices: rows.map(toStatusDevice),
    deployments: jobs.reverse().map(toDeployment),
  };
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
