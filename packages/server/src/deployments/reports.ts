/**
 * An agent's reports (`POST /api/v1/device/reports`, several at once on
 * `POST /api/v1/device/reports/batch`): an update's phase, or how the running release's process
 * stands. Both keep `device_apps` saying what the device really runs.
 */
import { FlotillaError, isAppStatusReport, isFlotillaError } from '@flotilla/protocol';
import type { AppStatusReport, DeviceReport, UpdatePhase, UpdateReport } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { Kysely, RawBuilder, Transaction } from 'kysely';
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
  } else {
    const folded = await recordFolded(ctx, deviceId, [report], sourceIp);
    if (folded) {
      for (const event of folded) events.emit(event);
      return;
    }
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
  const folded = await recordFolded(ctx, deviceId, reports, sourceIp);
  if (folded) {
    for (const event of folded) events.emit(event);
    return;
  }
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

/** What `device_apps` columns a folded batch sets: values, or expressions over the row before it. */
type FoldedSet = Record<string, string | number | null | RawBuilder<unknown>>;

/** A batch folded into one update of the app's row, with its audit entries and events. */
interface Folded {
  app: string;
  /** The release every update report is about: the row must have it assigned (undefined: only status reports). */
  targetPath: string | undefined;
  set: FoldedSet;
  audits: AuditEntryInput[];
  events: DomainEvent[];
}

/**
 * The batch as one update of its app's row, when that is what it is in the common case: every
 * report on one app, the update reports all on one release, which the row must have assigned. The
 * final row is computed here report after report, from the row before the batch where a report
 * depends on it (whether a commit moves what runs: `previous` and the process status). Null: the
 * batch is not of that form.
 */
function foldReports(
  ctx: ServerContext,
  deviceId: string,
  reports: readonly DeviceReport[],
  sourceIp: string | null,
): Folded | null {
  const app = reports[0]?.app;
  if (app === undefined) return null;
  let targetPath: string | undefined;
  const set: FoldedSet = {};
  // What runs as the batch goes: unknown (the row's `current`) until a report says it.
  let current: { value: string | null } | undefined;
  const audits: AuditEntryInput[] = [];
  const out: DomainEvent[] = [];
  for (const report of reports) {
    if (report.app !== app) return null;
    if (isAppStatusReport(report)) {
      set.current = report.targetPath;
      set.process_status = JSON.stringify(report.process);
      current = { value: report.targetPath };
      out.push(statusEvent(deviceId, report));
      continue;
    }
    if (targetPath !== undefined && report.targetPath !== targetPath) return null;
    targetPath = report.targetPath;
    Object.assign(set, progressOf(report));
    const running = runningAfter(report);
    if (running !== undefined) {
      if (current === undefined) {
        // As applyUpdate does with the row it read, in SQL over the row before the batch.
        const moved = sql`${sql.ref('current')} is distinct from ${running}`;
        set.previous = sql`case when ${moved} and ${sql.ref('current')} is not null then ${sql.ref('current')} else ${sql.ref('previous')} end`;
        set.process_status = sql`case when ${moved} then null else ${sql.ref('process_status')} end`;
      } else if (running !== current.value) {
        if (current.value !== null) set.previous = current.value;
        set.process_status = null;
      }
      set.current = running;
      current = { value: running };
    }
    if (FINAL.has(report.phase)) audits.push(auditEntry(deviceId, sourceIp, report, running));
    out.push(updateEvent(deviceId, report, running));
  }
  set.updated_at = ctx.clock.now().toISOString();
  return { app, targetPath, set, audits, events: out };
}

/**
 * Records a batch of the form `foldReports` takes in one statement on PostgreSQL (the update, the
 * audit and outbox rows in a data-modifying WITH: no BEGIN/COMMIT, one round trip) and in one
 * transaction on SQLite. Returns the events to emit, or null when nothing was written: the batch
 * is not of that form, or the row is not as it requires (no row, another release assigned), and
 * the caller's transaction reads the row and says which report is refused and why.
 */
async function recordFolded(
  ctx: ServerContext,
  deviceId: string,
  reports: readonly DeviceReport[],
  sourceIp: string | null,
): Promise<DomainEvent[] | null> {
  const folded = foldReports(ctx, deviceId, reports, sourceIp);
  if (!folded) return null;
  const update = (db: Kysely<Database> | Transaction<Database>) => {
    let query = db
      .updateTable('device_apps')
      .set(folded.set)
      .where('device_id', '=', deviceId)
      .where('app', '=', folded.app);
    if (folded.targetPath !== undefined) query = query.where('desired', '=', folded.targetPath);
    return query;
  };
  if (ctx.dialect === 'postgres') {
    const { audit, outbox } = ctx.audit.rows(folded.audits);
    const parts = [sql`u as (${update(ctx.db).returning('device_id')})`];
    if (audit.length > 0) {
      const columns = [
        'at',
        'actor_type',
        'actor_id',
        'action',
        'subject_type',
        'subject_id',
        'source_ip',
        'details',
      ] as const;
      parts.push(sql`a as (${insertAfter('audit_log', columns, audit)})`);
      parts.push(
        sql`o as (${insertAfter('event_outbox', ['type', 'at', 'device_id', 'app', 'rollout', 'payload'], outbox)})`,
      );
    }
    const result = await sql<{ ok: number }>`with ${sql.join(parts)} select 1 as ok from u`.execute(ctx.db);
    if (result.rows.length === 0) return null;
    if (audit.length > 0) ctx.audit.written();
    return folded.events;
  }
  const written = await ctx.db.transaction().execute(async (trx) => {
    const result = await update(trx).executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) return false;
    if (folded.audits.length > 0) await ctx.audit.recordMany(folded.audits, trx);
    return true;
  });
  return written ? folded.events : null;
}

/**
 * `INSERT … SELECT` of rows, in order, only when the statement's update (`u`) changed its row:
 * the audit and outbox rows of a folded batch within its one statement (PostgreSQL).
 */
function insertAfter(
  table: string,
  columns: readonly string[],
  rows: readonly Record<string, unknown>[],
): RawBuilder<unknown> {
  const names = sql.join(columns.map((c) => sql.ref(c)));
  const values = sql.join(
    rows.map((row, i) => sql`(${sql.lit(i)}, ${sql.join(columns.map((c) => row[c] ?? null))})`),
  );
  return sql`insert into ${sql.table(table)} (${names}) select ${names} from (values ${values}) as v(${sql.ref('ord')}, ${names}) where exists (select 1 from u) order by ${sql.ref('ord')}`;
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
  const running = runningAfter(report);
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

/** What runs once the report is true (undefined: it does not say): what it names, or a commit's release. */
function runningAfter(report: UpdateReport): string | null | undefined {
  if (report.running !== undefined) return report.running;
  return report.phase === 'committed' ? report.targetPath : undefined;
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
