/** An agent's report of one update's progress (`POST /api/v1/device/reports`). */
import { FlotillaError } from '@flotilla/protocol';
import type { UpdatePhase, UpdateReport } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';

const FINAL: ReadonlySet<UpdatePhase> = new Set(['committed', 'failed', 'rolled-back']);

/**
 * Updates the device's row for the app. Only reports about the release currently assigned count;
 * anything else is FLT_REPORT_STALE (e.g. a report still in flight from before a new deployment).
 */
export async function recordReport(
  ctx: ServerContext,
  deviceId: string,
  report: UpdateReport,
  sourceIp: string | null,
): Promise<void> {
  await ctx.db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('device_apps')
      .select(['desired', 'current'])
      .where('device_id', '=', deviceId)
      .where('app', '=', report.app)
      .executeTakeFirst();
    if (!row || row.desired !== report.targetPath)
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
    await trx
      .updateTable('device_apps')
      .set({
        phase: report.phase,
        ...(report.bytesDone !== undefined && { bytes_done: report.bytesDone }),
        ...(report.bytesTotal !== undefined && { bytes_total: report.bytesTotal }),
        ...(report.bytesFetched !== undefined && { bytes_fetched: report.bytesFetched }),
        error: report.phase === 'committed' ? null : error,
        ...(report.phase === 'committed' && { current: report.targetPath }),
        // The release it ran before stays readable while the device may roll back to it.
        ...(report.phase === 'committed' &&
          row.current !== null &&
          row.current !== report.targetPath && { previous: row.current }),
        updated_at: ctx.clock.now().toISOString(),
      })
      .where('device_id', '=', deviceId)
      .where('app', '=', report.app)
      .execute();
    if (!FINAL.has(report.phase)) return;
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
          ...(report.bytesFetched !== undefined && { bytesFetched: report.bytesFetched }),
          ...(report.error && { error: { code: report.error.code, message: report.error.message } }),
        },
      },
      trx,
    );
  });
}
