/**
 * An agent's reports (`POST /api/v1/device/reports`): an update's phase, or how the running
 * release's process stands. Both keep `device_apps` saying what the device really runs.
 */
import { FlotillaError, isAppStatusReport } from '@flotilla/protocol';
import type { AppStatusReport, DeviceReport, UpdatePhase, UpdateReport } from '@flotilla/protocol';
import type { Transaction } from 'kysely';
import type { ServerContext } from '../context.js';
import type { Database } from '../db/schema.js';
import type { EventBus } from '../events/bus.js';

const FINAL: ReadonlySet<UpdatePhase> = new Set(['committed', 'failed', 'rolled-back']);

/** Records the report, then emits `device.update.<phase>` or `device.app.status`. */
export async function recordReport(
  ctx: ServerContext,
  events: EventBus,
  deviceId: string,
  report: DeviceReport,
  sourceIp: string | null,
): Promise<void> {
  if (isAppStatusReport(report)) {
    await recordStatus(ctx, deviceId, report);
    events.emit({ type: 'device.app.status', deviceId, app: report.app, targetPath: report.targetPath });
    return;
  }
  const running = await recordUpdate(ctx, deviceId, report, sourceIp);
  events.emit({
    type: `device.update.${report.phase}`,
    deviceId,
    app: report.app,
    phase: report.phase,
    targetPath: report.targetPath,
    ...(running !== undefined && { running }),
  });
}

/**
 * Updates the device's row for the app. Progress counts only for the release currently assigned;
 * anything else is FLT_REPORT_STALE (e.g. a report still in flight from before a new deployment).
 * What a final report says runs (`running`: a commit, an automatic or an operator's rollback) is
 * recorded whichever release it is about: it is what the device runs, and reports arrive in order.
 */
async function recordUpdate(
  ctx: ServerContext,
  deviceId: string,
  report: UpdateReport,
  sourceIp: string | null,
): Promise<string | null | undefined> {
  return ctx.db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('device_apps')
      .select(['desired', 'current'])
      .where('device_id', '=', deviceId)
      .where('app', '=', report.app)
      .executeTakeFirst();
    const final = FINAL.has(report.phase);
    const running =
      report.running !== undefined
        ? report.running
        : report.phase === 'committed'
          ? report.targetPath
          : undefined;
    const stale = !row || row.desired !== report.targetPath;
    if (stale && !(row && final && running !== undefined))
      throw new FlotillaError(
        'FLT_REPORT_STALE',
        `${report.targetPath} is not the release assigned for ${report.app}`,
        {
          details: { app: report.app, assigned: row?.desired ?? null },
        },
      );
    const error = report.error
      ? JSON.stringify({ code: report.error.code, message: report.error.message })
      : null;
    const now = ctx.clock.now().toISOString();
    const moved = running !== undefined && running !== row.current;
    await trx
      .updateTable('device_apps')
      .set({
        // A report about a release no longer assigned changes only what is shown as running.
        ...(!stale && {
          phase: report.phase,
          ...(report.bytesDone !== undefined && { bytes_done: report.bytesDone }),
          ...(report.bytesTotal !== undefined && { bytes_total: report.bytesTotal }),
          ...(report.bytesFetched !== undefined && { bytes_fetched: report.bytesFetched }),
          error: report.phase === 'committed' ? null : error,
        }),
        ...(running !== undefined && { current: running }),
        // The release it ran before stays readable while the device may roll back to it.
        ...(moved && row.current !== null && { previous: row.current }),
        // The process status was about the release that ran before; the agent reports the new one's.
        ...(moved && { process_status: null }),
        updated_at: now,
      })
      .where('device_id', '=', deviceId)
      .where('app', '=', report.app)
      .execute();
    if (final) await audit(ctx, trx, deviceId, sourceIp, report, running);
    return running;
  });
}

/**
 * The running release's process status. It names the release the device runs, so it also corrects
 * `current` (e.g. after reports lost while the server was down).
 */
async function recordStatus(ctx: ServerContext, deviceId: string, report: AppStatusReport): Promise<void> {
  const result = await ctx.db
    .updateTable('device_apps')
    .set({
      current: report.targetPath,
      process_status: JSON.stringify(report.process),
      updated_at: ctx.clock.now().toISOString(),
    })
    .where('device_id', '=', deviceId)
    .where('app', '=', report.app)
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) === 0)
    throw new FlotillaError('FLT_REPORT_STALE', `no release of ${report.app} was assigned to this device`, {
      details: { app: report.app, assigned: null },
    });
}

async function audit(
  ctx: ServerContext,
  trx: Transaction<Database>,
  deviceId: string,
  sourceIp: string | null,
  report: UpdateReport,
  running: string | null | undefined,
): Promise<void> {
  await ctx.audit.record(
    {
      actorType: 'device',
      actorId: deviceId,
      action: `update.${report.phase}`,
      subjectType: 'device',
      subjectId: deviceId,
      sourceIp,
      details: {
        app: report.app,
        targetPath: report.targetPath,
        ...(running !== undefined && { running }),
        ...(report.bytesFetched !== undefined && { bytesFetched: report.bytesFetched }),
        ...(report.error && { error: { code: report.error.code, message: report.error.message } }),
      },
    },
    trx,
  );
}
