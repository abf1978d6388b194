/**
 * Rollouts: create, preview, read, the operator's actions and the per-device explanation
 * (docs/rollouts.md). Every change locks the rollout's row in a write transaction, as the engine's
 * ticks do, and nudges the engine after its commit.
 */
import { randomId } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import type {
  CreateRolloutRequest,
  Rollout,
  RolloutAction,
  RolloutDevicePage,
  RolloutDevicesQuery,
  RolloutList,
  RolloutPhase,
  RolloutPreview,
  RolloutPreviewRequest,
  RolloutState,
  RolloutWhy,
} from '@flotilla/protocol';
import type { Db } from '../context.js';
import { isUniqueViolation } from '../db/errors.js';
import { readSnapshot } from '../db/read-snapshot.js';
import { lockRows, writeTransaction } from '../db/write-transaction.js';
import type { DeployServices } from '../deployments/index.js';
import { unassignInTransaction } from '../deployments/index.js';
import { getRelease } from '../releases/service.js';
import type { Creator } from '../releases/service.js';
import { missingError } from '../secrets/index.js';
import type { AfterCommit, RolloutEngine } from './engine.js';
import { Tally } from './counts.js';
import { afterCommit, insertDevices, matchingDevices } from './engine.js';
import type { RolloutRow } from './view.js';
import { toRollout, toRolloutDevice } from './view.js';
import { checkWaves, waveSizes } from './waves.js';
import { nextOpening, parseWindow, windowOpen } from './window.js';

export interface RolloutServices {
  deploy: DeployServices;
  engine: RolloutEngine;
}

const notFound = (id: string) =>
  new FlotillaError('FLT_ROLLOUT_NOT_FOUND', `no rollout ${id}`, { details: { id } });

async function checkRelease(svc: DeployServices, app: string, version: string) {
  const release = await getRelease(svc.ctx.db, app, version);
  if (!release.signed)
    throw new FlotillaError(
      'FLT_RELEASE_UNSIGNED',
      `${app}@${version} is not in the signed targets yet; sign it by pushing the same tree again (flotilla release push)`,
      { details: { targetPath: release.targetPath } },
    );
  const missing = (release.secrets ?? []).filter((s) => !s.stored).map((s) => s.name);
  if (missing.length > 0) throw missingError(app, version, missing);
  if (!(await svc.trust.image.target(release.targetPath)))
    throw new FlotillaError(
      'FLT_TUF_TARGET_MISSING',
      `the image repository has no target ${release.targetPath}`,
      {
        details: { path: release.targetPath },
      },
    );
  return release;
}

export async function previewRollout(
  svc: RolloutServices,
  input: RolloutPreviewRequest,
): Promise<RolloutPreview> {
  checkWaves(input.waves);
  // With `app`, devices in another active rollout of that app are left out, as `create` does.
  const ids = await matchingDevices(
    svc.deploy,
    svc.deploy.ctx.db,
    input.filter,
    input.app ?? '',
    svc.deploy.ctx.clock.now(),
  );
  return {
    matched: ids.length,
    waves: waveSizes(input.waves, ids.length).map((size, index) => ({ index, size })),
  };
}

export async function createRollout(
  svc: RolloutServices,
  input: CreateRolloutRequest,
  actor: Creator,
): Promise<Rollout> {
  const { ctx } = svc.deploy;
  checkWaves(input.waves);
  if (input.window !== undefined) parseWindow(input.window);
  const minSuccess = input.minSuccess ?? 100;
  const maxFailure = input.maxFailure ?? 0;
  const release = await checkRelease(svc.deploy, input.app, input.version);
  const id = randomId('rol_', 8);
  const now = ctx.clock.now();
  const iso = now.toISOString();
  let row: RolloutRow;
  try {
    row = await writeTransaction(ctx.db, ctx.dialect, async (trx) => {
      const ids = await matchingDevices(svc.deploy, trx, input.filter, input.app, now);
      if (ids.length === 0 && input.includeNewDevices !== true)
        throw new FlotillaError(
          'FLT_ROLLOUT_EMPTY',
          `no accepted device matches "${input.filter}" outside another active rollout of ${input.app}`,
          { details: { filter: input.filter } },
        );
      const sizes = waveSizes(input.waves, ids.length);
      const values: RolloutRow = {
        id,
        app: release.app,
        version: release.version,
        target_path: release.targetPath,
        filter: input.filter,
        waves: JSON.stringify(input.waves),
        wave_sizes: JSON.stringify(sizes),
        min_success: minSuccess,
        max_failure: maxFailure,
        soak_seconds: input.soakSeconds ?? 0,
        approve_waves: input.approveWaves === true ? 1 : 0,
        window: input.window ?? null,
        include_new: input.includeNewDevices === true ? 1 : 0,
        retry: input.retry ?? 0,
        state: 'running',
        current_wave: 0,
        approved_wave: 0,
        matched: ids.length,
        paused_reason: null,
        created_at: iso,
        created_by: actor.username,
        updated_at: iso,
        counts: Tally.ofSizes(sizes).toJSON(),
      };
      await trx.insertInto('rollouts').values(values).execute();
      const members: { id: string; wave: number }[] = [];
      let next = 0;
      sizes.forEach((size, wave) => {
        for (let i = 0; i < size; i++) members.push({ id: ids[next++]!, wave });
      });
      await insertDevices(trx, id, release.app, members, now);
      await ctx.audit.record(
        {
          actorType: 'user',
          actorId: actor.userId,
          action: 'rollout.create',
          subjectType: 'rollout',
          subjectId: id,
          sourceIp: actor.sourceIp,
          details: {
            app: release.app,
            version: release.version,
            filter: input.filter,
            waves: input.waves,
            matched: ids.length,
          },
        },
        trx,
      );
      return values;
    });
  } catch (e) {
    if (isUniqueViolation(e))
      throw new FlotillaError(
        'FLT_CONFLICT',
        'another rollout took some of these devices at the same time; try again',
      );
    throw e;
  }
  const events = svc.deploy.events;
  events.emit({
    type: 'rollout.created',
    rolloutId: id,
    app: row.app,
    version: row.version,
    matched: row.matched,
    actor: { userId: actor.userId, sourceIp: actor.sourceIp },
  });
  events.emit({
    type: 'rollout.wave.started',
    rolloutId: id,
    wave: 0,
    size: (JSON.parse(row.wave_sizes) as number[])[0] ?? 0,
  });
  svc.engine.nudge();
  return toRollout(ctx.db, row);
}

export async function listRollouts(svc: RolloutServices, state?: RolloutState): Promise<RolloutList> {
  const { db, dialect } = svc.deploy.ctx;
  // The rows and their counts from one snapshot: an engine pass committing in between would
  // otherwise show a state that does not match the counts (failed, yet still running).
  return readSnapshot(db, dialect, async (trx) => {
    let query = trx.selectFrom('rollouts').selectAll().orderBy('created_at', 'desc').orderBy('id');
    if (state !== undefined) query = query.where('state', '=', state);
    const rows = await query.limit(1000).execute();
    const items: Rollout[] = [];
    for (const row of rows) items.push(await toRollout(trx, row));
    return { items };
  });
}

async function rolloutRow(db: Db, id: string): Promise<RolloutRow> {
  const row = await db.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound(id);
  return row;
}

export async function getRollout(svc: RolloutServices, id: string): Promise<Rollout> {
  const { db, dialect } = svc.deploy.ctx;
  return readSnapshot(db, dialect, async (trx) => toRollout(trx, await rolloutRow(trx, id)));
}

const conflict = (row: RolloutRow, action: string) =>
  new FlotillaError('FLT_ROLLOUT_STATE_CONFLICT', `cannot ${action} rollout ${row.id}: it is ${row.state}`, {
    details: { state: row.state },
  });

/**
 * pause (running or waiting for approval), resume (paused: failed devices of the started waves are
 * tried again, on `version` when given), approve (waiting for approval: the next wave starts),
 * abort (not finished: devices that have not started stay on their release).
 */
export async function rolloutAction(
  svc: RolloutServices,
  id: string,
  action: RolloutAction,
  actor: Creator,
  options: { version?: string } = {},
): Promise<Rollout> {
  const { ctx } = svc.deploy;
  const eventActor = { userId: actor.userId, sourceIp: actor.sourceIp };
  const post: AfterCommit = afterCommit();
  const release =
    options.version !== undefined
      ? await checkRelease(svc.deploy, (await rolloutRow(ctx.db, id)).app, options.version)
      : undefined;
  if (release !== undefined && action !== 'resume')
    throw new FlotillaError('FLT_VALIDATION', 'only resume takes a version');
  const row = await writeTransaction(ctx.db, ctx.dialect, async (trx) => {
    const row = await lockRows(
      trx.selectFrom('rollouts').selectAll().where('id', '=', id),
      ctx.dialect,
    ).executeTakeFirst();
    if (!row) throw notFound(id);
    const now = ctx.clock.now().toISOString();
    // Devices per wave and phase, kept in the row with each change of phase below.
    const tally = await Tally.of(trx, row);
    const update = async (values: Partial<RolloutRow>) => {
      Object.assign(row, values, { updated_at: now });
      await trx
        .updateTable('rollouts')
        .set({ ...values, updated_at: now })
        .where('id', '=', id)
        .execute();
    };
    switch (action) {
      case 'pause':
        if (row.state !== 'running' && row.state !== 'waiting-approval') throw conflict(row, action);
        await update({ state: 'paused', paused_reason: `paused by ${actor.username}` });
        post.events.push({
          type: 'rollout.paused',
          rolloutId: id,
          reason: row.paused_reason!,
          actor: eventActor,
        });
        break;
      case 'resume': {
        if (row.state !== 'paused') throw conflict(row, action);
        await update({
          state: 'running',
          paused_reason: null,
          ...(release !== undefined && { version: release.version, target_path: release.targetPath }),
        });
        // The failed devices of the started waves: with a new release, all get it; otherwise those
        // whose update failed before the switch are tried again, and the others (a release the
        // agent rolled back and holds, or one that failed its soak) stay failed, acknowledged.
        const failed = await trx
          .selectFrom('rollout_devices')
          .select(['device_id', 'detail', 'wave', 'acknowledged'])
          .where('rollout_id', '=', id)
          .where('phase', '=', 'failed')
          .where('wave', '<=', row.current_wave)
          .execute();
        const again = failed
          .filter(
            (f) =>
              release !== undefined ||
              (JSON.parse(f.detail ?? '{}') as { retryable?: boolean }).retryable === true,
          )
          .map((f) => f.device_id);
        const retried = new Set(again);
        const acknowledged = failed.map((f) => f.device_id).filter((d) => !retried.has(d));
        for (const f of failed) {
          if (retried.has(f.device_id)) {
            tally.move(f.wave, 'failed', 'pending');
            if (f.acknowledged === 1) tally.acknowledge(f.wave, -1);
          } else if (f.acknowledged !== 1) tally.acknowledge(f.wave, 1);
        }
        for (let i = 0; i < again.length; i += 500)
          await trx
            .updateTable('rollout_devices')
            .set((eb) => ({
              phase: 'pending',
              since: now,
              next_attempt_at: null,
              acknowledged: 0,
              retries: eb('retries', '+', 1),
            }))
            .where('rollout_id', '=', id)
            .where('device_id', 'in', again.slice(i, i + 500))
            .execute();
        for (let i = 0; i < acknowledged.length; i += 500)
          await trx
            .updateTable('rollout_devices')
            .set({ acknowledged: 1 })
            .where('rollout_id', '=', id)
            .where('device_id', 'in', acknowledged.slice(i, i + 500))
            .execute();
        post.events.push({ type: 'rollout.resumed', rolloutId: id, actor: eventActor });
        break;
      }
      case 'approve':
        if (row.state !== 'waiting-approval') throw conflict(row, action);
        await update({ state: 'running', paused_reason: null, approved_wave: row.current_wave + 1 });
        post.events.push({
          type: 'rollout.approved',
          rolloutId: id,
          wave: row.current_wave + 1,
          actor: eventActor,
        });
        break;
      case 'abort': {
        if (row.state === 'completed' || row.state === 'aborted') throw conflict(row, action);
        const notStarted = await trx
          .selectFrom('rollout_devices')
          .select(['device_id', 'phase', 'wave'])
          .where('rollout_id', '=', id)
          .where('phase', 'in', ['pending', 'notified'])
          .orderBy('device_id')
          .execute();
        const released: string[] = [];
        for (const d of notStarted) {
          if (d.phase === 'notified') {
            const stateVersion = await unassignInTransaction(ctx, trx, d.device_id, row.app, id);
            if (stateVersion === null) continue; // it started meanwhile: it finishes or rolls back
            post.unassigned.push({ deviceId: d.device_id, stateVersion });
          }
          released.push(d.device_id);
          tally.move(d.wave, d.phase as RolloutPhase, 'cancelled');
        }
        for (let i = 0; i < released.length; i += 500)
          await trx
            .updateTable('rollout_devices')
            .set({ phase: 'cancelled', reason: 'aborted', since: now })
            .where('rollout_id', '=', id)
            .where('device_id', 'in', released.slice(i, i + 500))
            .execute();
        await trx.updateTable('rollout_devices').set({ active: 0 }).where('rollout_id', '=', id).execute();
        await update({ state: 'aborted', paused_reason: `aborted by ${actor.username}` });
        post.events.push({
          type: 'rollout.aborted',
          rolloutId: id,
          actor: eventActor,
          released: released.length,
        });
        break;
      }
    }
    await tally.save(trx, row);
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: actor.userId,
        action: `rollout.${action}`,
        subjectType: 'rollout',
        subjectId: id,
        sourceIp: actor.sourceIp,
        details: release !== undefined ? { version: release.version } : null,
      },
      trx,
    );
    return row;
  });
  void svc.engine.publish(post);
  svc.engine.nudge();
  return toRollout(ctx.db, row);
}

export async function rolloutDevices(
  svc: RolloutServices,
  id: string,
  query: RolloutDevicesQuery,
): Promise<RolloutDevicePage> {
  const { db } = svc.deploy.ctx;
  await rolloutRow(db, id);
  const limit = query.limit ?? 100;
  let q = db.selectFrom('rollout_devices').selectAll().where('rollout_id', '=', id);
  if (query.wave !== undefined) q = q.where('wave', '=', query.wave);
  if (query.phase !== undefined) q = q.where('phase', '=', query.phase);
  if (query.after !== undefined) q = q.where('device_id', '>', query.after);
  const rows = await q
    .orderBy('device_id')
    .limit(limit + 1)
    .execute();
  const items = rows.slice(0, limit).map(toRolloutDevice);
  return { items, next: rows.length > limit ? items[items.length - 1]!.deviceId : null };
}

/** One sentence on where a device stands in a rollout and why. */
export async function explainDevice(
  svc: RolloutServices,
  id: string,
  deviceId: string,
  /** The app's output may hold secrets: only for deployers, as `devices logs`. */
  withLogs: boolean,
): Promise<RolloutWhy> {
  const { ctx } = svc.deploy;
  const rollout = await rolloutRow(ctx.db, id);
  const device = await ctx.db
    .selectFrom('devices')
    .select(['id', 'status', 'last_seen_at'])
    .where('id', '=', deviceId)
    .executeTakeFirst();
  if (!device) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${deviceId}`);
  const rd = await ctx.db
    .selectFrom('rollout_devices')
    .selectAll()
    .where('rollout_id', '=', id)
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  if (!rd) {
    const other = await ctx.db
      .selectFrom('rollout_devices')
      .select('rollout_id')
      .where('device_id', '=', deviceId)
      .where('app', '=', rollout.app)
      .where('active', '=', 1)
      .executeTakeFirst();
    return {
      deviceId,
      state: 'not-matched',
      reason: other ? 'in-other-rollout' : 'not-matched',
      text: other
        ? `not in this rollout: it was in rollout ${other.rollout_id} of ${rollout.app} when this one started`
        : `not in this rollout: it did not match "${rollout.filter}" (or was not accepted) when the rollout started`,
      since: null,
      wave: null,
      retries: 0,
    };
  }
  const app = await ctx.db
    .selectFrom('device_apps')
    .selectAll()
    .where('device_id', '=', deviceId)
    .where('app', '=', rollout.app)
    .executeTakeFirst();
  const now = ctx.clock.now();
  const online =
    svc.deploy.devices.presence.onlineIds().includes(deviceId) ||
    (device.last_seen_at !== null &&
      Date.parse(device.last_seen_at) >= now.getTime() - ctx.config.offlineAfterMs);
  const offline = online ? '' : `; the device is offline (last seen ${device.last_seen_at ?? 'never'})`;
  const detail = rd.detail === null ? {} : (JSON.parse(rd.detail) as { message?: string; logTail?: string });
  const phase = rd.phase as RolloutPhase;
  const wave = rd.wave + 1;
  const retried = rd.retries > 0 ? ` (retried ${rd.retries} time${rd.retries === 1 ? '' : 's'})` : '';
  let text: string;
  let progress: number | undefined;
  switch (phase) {
    case 'pending': {
      if (rollout.state === 'aborted') text = 'never assigned: the rollout was aborted';
      else if (rd.wave > rollout.current_wave)
        text = `waiting for wave ${wave}; wave ${rollout.current_wave + 1} is running`;
      else if (rollout.state === 'paused')
        text = `waiting: the rollout is paused (${rollout.paused_reason ?? ''})`;
      else if (rollout.state === 'waiting-approval') text = `waiting: ${rollout.paused_reason ?? 'approval'}`;
      else if (rd.next_attempt_at !== null && rd.next_attempt_at > now.toISOString())
        text = `failed with ${rd.reason ?? 'an error'}; retry ${rd.retries} of ${rollout.retry} at ${rd.next_attempt_at}`;
      else if (rollout.window !== null && !windowOpen(parseWindow(rollout.window), now)) {
        const opens = nextOpening(parseWindow(rollout.window), now);
        text = `outside its maintenance window "${rollout.window}"${opens ? `; it opens at ${opens.toISOString()}` : ''}`;
      } else text = 'about to be assigned';
      break;
    }
    case 'notified':
      text = `assigned at ${rd.assigned_at ?? rd.since}, not started yet${offline}`;
      break;
    case 'downloading': {
      const done = app?.bytes_done === null || app === undefined ? null : Number(app.bytes_done);
      const total = app?.bytes_total === null || app === undefined ? null : Number(app.bytes_total);
      if (done !== null && total !== null && total > 0)
        progress = Math.min(100, Math.round((done * 100) / total));
      text = `downloading${progress !== undefined ? ` ${progress} %` : ''}${offline}`;
      break;
    }
    case 'installing':
      text = `installing (${app?.phase ?? 'installing'}) since ${rd.since}${offline}`;
      break;
    case 'soaking':
      text = `installed; soaking until ${rd.soak_until ?? '?'} (must stay running and in touch)${offline}`;
      break;
    case 'succeeded':
      text = `succeeded at ${rd.since}${rollout.soak_seconds > 0 ? ` after a ${rollout.soak_seconds}s healthy soak` : ''}${retried}`;
      break;
    case 'failed':
      text = `failed: ${rd.reason ?? 'unknown'}${detail.message ? ` (${detail.message})` : ''}${retried}`;
      break;
    case 'cancelled':
      text =
        rd.reason === 'superseded'
          ? 'left the rollout: another deployment replaced its assignment'
          : 'not updated: the rollout was aborted before the device started; it stays on its release';
      break;
  }
  return {
    deviceId,
    state: phase,
    reason: rd.reason,
    text,
    since: rd.since,
    wave: rd.wave,
    retries: rd.retries,
    ...(progress !== undefined && { progress }),
    ...(withLogs && detail.logTail !== undefined && { logTail: detail.logTail }),
  };
}
