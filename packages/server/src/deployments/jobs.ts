/**
 * Deployments as batched background jobs (docs/architecture.md "Assignments"). A deployment records
 * the devices it selected; batches of `deployBatchSize` devices are then assigned in device-id
 * order, each in one write transaction that locks the job row, assigns the batch's devices still
 * accepted (two statements for the whole batch) and advances the job's cursor. After each commit
 * the batch's devices are told at once; their director metadata is re-signed in the background
 * with bounded concurrency (and before any read of it, `DirectorSync.beforeRead`), so telling
 * 10,000 devices does not wait for 10,000 re-signs.
 *
 * A server stopped mid-job resumes every running job at its next start; the cursor is committed
 * with the batch, so no device is assigned twice. Two processes on one PostgreSQL serialise on the
 * job row (`SELECT … FOR UPDATE`) and each batch is taken by one of them.
 */
import { concurrencyLimit } from '@flotilla/node-kit';
import type { Limit } from '@flotilla/node-kit';
import { ServerCommands, errorSummary } from '@flotilla/protocol';
import type { Deployment } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db } from '../context.js';
import type { DeploymentJobsTable } from '../db/schema.js';
import { lockRows, writeTransaction } from '../db/write-transaction.js';
import { crashPoint } from '../test-hooks.js';
import type { DeployServices } from './service.js';

/**
 * Re-signs of director metadata running at once in the background. Each writes three fsynced
 * files; running several at once lets the file system commit their fsyncs together.
 */
const RESIGN_CONCURRENCY = 16;
/** A batch that fails (e.g. the database is briefly unavailable) is retried this many times. */
const BATCH_ATTEMPTS = 5;

/** What the jobs need of the deployments' services (all but themselves). */
export type JobServices = Omit<DeployServices, 'jobs'>;

interface BatchResult {
  job: Selectable<DeploymentJobsTable>;
  assigned: { deviceId: string; stateVersion: number }[];
  done: boolean;
}

export class DeploymentJobs {
  readonly #running = new Map<string, Promise<void>>();
  readonly #resign: Limit = concurrencyLimit(RESIGN_CONCURRENCY);
  /** Re-signs started and not yet settled. */
  readonly #resigning = new Set<Promise<unknown>>();
  /** Per job whose batches are all in: when its devices' re-signs have settled. */
  readonly #signedOf = new Map<string, Promise<void>>();
  #stopping = false;

  constructor(private readonly svc: JobServices) {}

  /**
   * Runs the job until every batch is committed and its devices told, or it failed (joins the run
   * already going in this process). The director re-signs go on after it resolves (`resigned`).
   */
  run(id: string): Promise<void> {
    let running = this.#running.get(id);
    if (running === undefined) {
      running = this.#loop(id).finally(() => this.#running.delete(id));
      this.#running.set(id, running);
    }
    return running;
  }

  /** At start: carries on every job a stopped server left running. Returns how many. */
  async resume(): Promise<number> {
    const rows = await this.svc.ctx.db
      .selectFrom('deployment_jobs')
      .select('id')
      .where('state', '=', 'running')
      .orderBy('created_at')
      .execute();
    for (const { id } of rows) void this.run(id);
    if (rows.length > 0)
      this.svc.ctx.log.warn(
        { deployments: rows.length },
        'resuming deployments a stopped server left running',
      );
    return rows.length;
  }

  /**
   * Stops after the batches and re-signs in flight; the rest of a job is resumed, and re-signs not
   * started are repaired, at the next start.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.allSettled([...this.#running.values()]);
    await this.resigned();
  }

  /** After `run(id)`: resolves when the re-signs of that job's devices have settled. */
  signed(id: string): Promise<void> {
    return this.#signedOf.get(id) ?? Promise.resolve();
  }

  /** Resolves when the director re-signs started so far have settled. */
  async resigned(): Promise<void> {
    while (this.#resigning.size > 0) await Promise.allSettled([...this.#resigning]);
  }

  async #loop(id: string): Promise<void> {
    const { ctx } = this.svc;
    const resigns: Promise<unknown>[] = [];
    let failures = 0;
    while (!this.#stopping) {
      let batch: BatchResult | null;
      try {
        batch = await this.#batch(id);
        failures = 0;
      } catch (err) {
        failures++;
        if (failures >= BATCH_ATTEMPTS) {
          ctx.log.error(
            { err, deployment: id },
            'a deployment batch failed again; the deployment is marked failed',
          );
          await this.#fail(id, err).catch((e: unknown) =>
            ctx.log.error({ err: e, deployment: id }, 'could not mark the deployment failed'),
          );
          break;
        }
        ctx.log.warn({ err, deployment: id, attempt: failures }, 'a deployment batch failed; retrying');
        await new Promise((r) => setTimeout(r, 500 * failures));
        continue;
      }
      if (batch === null) break;
      const { job, assigned, done } = batch;
      if (assigned.length > 0) crashPoint('assignment.after-commit');
      for (const { deviceId, stateVersion } of assigned) {
        this.svc.devices.presence.send(deviceId, ServerCommands.stateChanged, { stateVersion });
        this.svc.events.emit({
          type: 'device.assigned',
          deviceId,
          app: job.app,
          targetPath: job.target_path,
          rollout: id,
          stateVersion,
        });
      }
      for (const { deviceId } of assigned) {
        const resign = this.#resign(() =>
          // A server stopping leaves the rest marked: re-signed at its next start (repairPending).
          this.#stopping
            ? Promise.resolve(false)
            : // The assignment is recorded: a failed re-sign stays marked and is retried before the
              // device's next director read and at the next start, so it does not fail the deployment.
              this.svc.directors.sync(deviceId).catch((err: unknown) => {
                ctx.log.warn(
                  { err, deviceId },
                  'director re-sign after an assignment failed; retried on the next read',
                );
              }),
        );
        this.#resigning.add(resign);
        resigns.push(resign);
        void resign.finally(() => this.#resigning.delete(resign));
      }
      if (assigned.length > 0) crashPoint('deployment.after-batch');
      if (done) {
        await this.#announce(job);
        break;
      }
    }
    const signed = Promise.all(resigns).then(() => undefined);
    this.#signedOf.set(id, signed);
    void signed.finally(() => {
      if (this.#signedOf.get(id) === signed) this.#signedOf.delete(id);
    });
  }

  /** One batch in one transaction; null when the job is not running (complete, failed or unknown). */
  #batch(id: string): Promise<BatchResult | null> {
    const { ctx } = this.svc;
    const size = ctx.config.deployBatchSize;
    return writeTransaction(ctx.db, ctx.dialect, async (trx) => {
      const job = await lockRows(
        trx.selectFrom('deployment_jobs').selectAll().where('id', '=', id),
        ctx.dialect,
      ).executeTakeFirst();
      if (job === undefined || job.state !== 'running') return null;
      let next = trx.selectFrom('deployment_job_devices').select('device_id').where('job_id', '=', id);
      if (job.last_device_id !== null) next = next.where('device_id', '>', job.last_device_id);
      const rows = await next
        .orderBy('device_id')
        .limit(size + 1)
        .execute();
      const slice = rows.slice(0, size).map((r) => r.device_id);
      const done = rows.length <= size;
      const accepted = await lockAcceptedIds(this.svc, trx, slice);
      const assigned = await assignMany(this.svc, trx, accepted, job.app, job.target_path, id);
      const now = ctx.clock.now().toISOString();
      await trx
        .updateTable('deployment_jobs')
        .set({
          last_device_id: slice.at(-1) ?? job.last_device_id,
          assigned: Number(job.assigned) + assigned.length,
          processed: Number(job.processed) + slice.length,
          state: done ? 'complete' : 'running',
          updated_at: now,
          finished_at: done ? now : null,
        })
        .where('id', '=', id)
        .execute();
      return { job, assigned, done };
    });
  }

  async #fail(id: string, err: unknown): Promise<void> {
    const now = this.svc.ctx.clock.now().toISOString();
    const { code, message } = errorSummary(err);
    await this.svc.ctx.db
      .updateTable('deployment_jobs')
      .set({ state: 'failed', error: JSON.stringify({ code, message }), updated_at: now, finished_at: now })
      .where('id', '=', id)
      .where('state', '=', 'running')
      .execute();
  }

  /** The `deployment.created` event once every batch is in (delta precompute listens to it). */
  async #announce(job: Selectable<DeploymentJobsTable>): Promise<void> {
    const rows = await this.svc.ctx.db
      .selectFrom('device_apps')
      .select('device_id')
      .where('rollout', '=', job.id)
      .orderBy('device_id')
      .execute();
    this.svc.events.emit({
      type: 'deployment.created',
      rollout: job.id,
      app: job.app,
      version: job.version,
      targetPath: job.target_path,
      deviceIds: rows.map((r) => r.device_id),
      actor: { userId: job.actor_id ?? '', sourceIp: '' },
    });
  }
}

/** Locks the batch's device rows (in id order, so concurrent deployments never deadlock); the accepted ones. */
async function lockAcceptedIds(svc: JobServices, trx: Db, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await lockRows(
    trx
      .selectFrom('devices')
      .select(['id', 'status'])
      .where('id', 'in', [...ids])
      .orderBy('id'),
    svc.ctx.dialect,
  ).execute();
  return rows.filter((r) => r.status === 'accepted').map((r) => r.id);
}

/**
 * Records the assignment of every device given (one upsert and one update for the batch), bumps
 * each device's state version and marks its director metadata for re-signing.
 */
async function assignMany(
  svc: JobServices,
  trx: Db,
  deviceIds: readonly string[],
  app: string,
  targetPath: string,
  rollout: string,
): Promise<{ deviceId: string; stateVersion: number }[]> {
  if (deviceIds.length === 0) return [];
  const now = svc.ctx.clock.now().toISOString();
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
  return rows
    .map((r) => ({ deviceId: r.id, stateVersion: Number(r.state_version) }))
    .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
}

export function toDeployment(row: Selectable<DeploymentJobsTable>): Deployment {
  return {
    id: row.id,
    app: row.app,
    version: row.version,
    targetPath: row.target_path,
    state: row.state,
    total: Number(row.total),
    assigned: Number(row.assigned),
    processed: Number(row.processed),
    error: row.error === null ? null : (JSON.parse(row.error) as { code: string; message: string }),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}
