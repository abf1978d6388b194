/**
 * An agent's reports (`POST /api/v1/device/reports`, several at once on
 * `POST /api/v1/device/reports/batch`): an update's phase, or how the running release's process
 * stands. Both keep `device_apps` saying what the device really runs.
 */
import { FlotillaError, isAppStatusReport, isFlotillaError } from '@flotilla/protocol';
import type { AppStatusReport, DeviceReport, UpdatePhase, UpdateReport } from '@flotilla/protocol';
import type { Kysely, Transaction } from 'kysely';
import type { AuditEntryInput, ServerContext } from '../context.js';
import type { Database } from '../db/schema.js';
import type { DomainEvent, EventBus } from '../events/bus.js';

const FINAL: ReadonlySet<UpdatePhase> = new Set(['committed', 'failed', 'rolled-back']);

/** What a device's row for an app says before a report changes it. */
interface AppRow {
  desired: string | null;
  current: string | null;
}

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
    events.emit(statusEvent(deviceId, report));
    return;
  }
  if (!FINAL.has(report.phase) && report.running === undefined) {
    // Progress on the release assigned, the common case: one statement, no transaction.
    const result = await ctx.db
      .updateTable('device_apps')
      .set({ ...progressOf(report), updated_at: ctx.clock.now().toISOString() })
      .where('device_id', '=', deviceId)
      .where('app', '=', report.app)
      .where('desired', '=', report.targetPath)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) > 0) {
      events.emit(updateEvent(deviceId, report, undefined));
      return;
    }
    // Not the release assigned: the transaction below says so (FLT_REPORT_STALE).
  }
  const running = await ctx.db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('device_apps')
      .select(['desired', 'current'])
      .where('device_id', '=', deviceId)
      .where('app', '=', report.app)
      .executeTakeFirst();
    const { running, audit } = await applyUpdate(ctx, trx, deviceId, row, report, sourceIp);
    if (audit) await ctx.audit.record(audit, trx);
    return running;
  });
  events.emit(updateEvent(deviceId, report, running));
}

/**
 * Records a device's reports in order in one transaction, then emits their events in the same
 * order. All or nothing: the first report refused (e.g. FLT_REPORT_STALE) rolls back the ones
 * before it, and its error, with its own code, names it in `details.index`.
 */
export async function recordReports(
  ctx: ServerContext,
  events: EventBus,
  deviceId: string,
  reports: readonly DeviceReport[],
  sourceIp: string | null,
): Promise<void> {
  const emitted = await ctx.db.transaction().execute(async (trx) => {
    const apps = [...new Set(reports.map((r) => r.app))];
    // Every app's row once; what the reports change is followed here, report after report.
    const rows = new Map<string, AppRow>(
      (
        await trx
          .selectFrom('device_apps')
          .select(['app', 'desired', 'current'])
          .where('device_id', '=', deviceId)
          .where('app', 'in', apps)
          .execute()
      ).map((r) => [r.app, { desired: r.desired, current: r.current }]),
    );
    const out: DomainEvent[] = [];
    const audits: AuditEntryInput[] = [];
    for (const [index, report] of reports.entries()) {
      const row = rows.get(report.app);
      try {
        if (isAppStatusReport(report)) {
          if (row === undefined) throw notAssigned(report);
          await updateStatus(ctx, trx, deviceId, report);
          row.current = report.targetPath;
          out.push(statusEvent(deviceId, report));
          continue;
        }
        const { running, audit } = await applyUpdate(ctx, trx, deviceId, row, report, sourceIp);
        if (row !== undefined && running !== undefined) row.current = running;
        if (audit) audits.push(audit);
        out.push(updateEvent(deviceId, report, running));
      } catch (error) {
        throw atIndex(error, index);
      }
    }
    if (audits.length > 0) await ctx.audit.recordMany(audits, trx);
    return out;
  });
  for (const event of emitted) events.emit(event);
}

function statusEvent(deviceId: string, report: AppStatusReport): DomainEvent {
  return { type: 'device.app.status', deviceId, app: report.app, targetPath: report.targetPath };
}

function updateEvent(
  deviceId: string,
  report: UpdateReport,
  running: string | null | undefined,
): DomainEvent {
  return {
    type: `device.update.${report.phase}`,
    deviceId,
    app: report.app,
    phase: report.phase,
    targetPath: report.targetPath,
    ...(running !== undefined && { running }),
  };
}

/** A batch entry's error: its own code and message, `details.index` saying which entry. */
function atIndex(error: unknown, index: number): unknown {
  if (!isFlotillaError(error)) return error;
  const details =
    typeof error.details === 'object' && error.details !== null && !Array.isArray(error.details)
      ? { ...(error.details as Record<string, unknown>), index }
      : { index };
  return new FlotillaError(error.code, `report ${index}: ${error.message}`, { details, cause: error });
}

function notAssigned(report: AppStatusReport): FlotillaError {
  return new FlotillaError('FLT_REPORT_STALE', `no release of ${report.app} was assigned to this device`, {
    details: { app: report.app, assigned: null },
  });
}

/**
 * Updates the device's row for the app (`row`: as it stands before this report). Progress counts
 * only for the release currently assigned; anything else is FLT_REPORT_STALE (e.g. a report still
 * in flight from before a new deployment). What a final report says runs (`running`: a commit, an
 * automatic or an operator's rollback) is recorded whichever release it is about: it is what the
 * device runs, and reports arrive in order. Returns what runs now (undefined: not said) and the
 * audit entry of a final report.
 */
async function applyUpdate(
  ctx: ServerContext,
  trx: Transaction<Database>,
  deviceId: string,
  row: AppRow | undefined,
  report: UpdateReport,
  sourceIp: string | null,
): Promise<{ running: string | null | undefined; audit: AuditEntryInput | null }> {
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
  const now = ctx.clock.now().toISOString();
  const moved = running !== undefined && running !== row.current;
  await trx
    .updateTable('device_apps')
    .set({
      // A report about a release no longer assigned changes only what is shown as running.
      ...(!stale && progressOf(report)),
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
  return { running, audit: final ? auditEntry(deviceId, sourceIp, report, running) : null };
}

/** What a report on the release assigned sets: its phase, progress and error. */
function progressOf(report: UpdateReport) {
  return {
    phase: report.phase,
    ...(report.bytesDone !== undefined && { bytes_done: report.bytesDone }),
    ...(report.bytesTotal !== undefined && { bytes_total: report.bytesTotal }),
    ...(report.bytesFetched !== undefined && { bytes_fetched: report.bytesFetched }),
    error:
      report.phase === 'committed' || !report.error
        ? null
        : JSON.stringify({ code: report.error.code, message: report.error.message }),
  };
}

/**
 * The running release's process status. It names the release the device runs, so it also corrects
 * `current` (e.g. after reports lost while the server was down).
 */
async function recordStatus(ctx: ServerContext, deviceId: string, report: AppStatusReport): Promise<void> {
  if (!(await updateStatus(ctx, ctx.db, deviceId, report))) throw notAssigned(report);
}

/** Whether the device has a row for the app (and it was updated). */
async function updateStatus(
  ctx: ServerContext,
  db: Kysely<Database>,
  deviceId: string,
  report: AppStatusReport,
): Promise<boolean> {
  const result = await db
    .updateTable('device_apps')
    .set({
      current: report.targetPath,
      process_status: JSON.stringify(report.process),
      updated_at: ctx.clock.now().toISOString(),
    })
    .where('device_id', '=', deviceId)
    .where('app', '=', report.app)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

function auditEntry(
  deviceId: string,
  sourceIp: string | null,
  report: UpdateReport,
  running: string | null | undefined,
): AuditEntryInput {
  return {
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
  };
}
