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
import type { DeploymentJobsTable } from '../db/schema.js';
import { lockRows, writeTransaction } from '../db/write-transaction.js';
import { crashPoint } from '../test-hooks.js';
import type { AssignedDevice } from './assign.js';
import { assignMany, lockAcceptedIds } from './assign.js';
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
  assigned: AssignedDevice[];
  done: boolean;
}

/** What devices were assigned (for their `device.assigned` events). */
export interface AssignedTo {
  app: string;
  targetPath: string;
  /** The deployment's or the rollout's id. */
  rollout: string;
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

  /**
   * After the commit of assignments (a deployment's batch, a rollout's wave) or of their
   * withdrawal: tells each device at once (`state-changed`, and `device.assigned` when `assigned`
   * is given), then re-signs their director metadata in the background, RESIGN_CONCURRENCY at once
   * across every caller, or sooner when a device reads it first (`DirectorSync.beforeRead`). The
   * commit marked each device (`director_pending`), so a server stopped before a re-sign repairs
   * it at its next start. Resolves when these re-signs have settled; never rejects.
   */
  announce(changed: readonly AssignedDevice[], assigned?: AssignedTo): Promise<void> {
    const { ctx } = this.svc;
    for (const { deviceId, stateVersion } of changed) {
      this.svc.devices.presence.send(deviceId, ServerCommands.stateChanged, { stateVersion });
      if (assigned) this.svc.events.emit({ type: 'device.assigned', deviceId, ...assigned, stateVersion });
    }
    const resigns = changed.map(({ deviceId, stateVersion }) => {
      const resign = this.#resign(() =>
        // A server stopping leaves the rest marked: re-signed at its next start (repairPending).
        this.#stopping
          ? Promise.resolve(false)
          : // The change is recorded: a failed re-sign stays marked and is retried before the
            // device's next director read and at the next start, so it fails nothing.
            this.svc.directors.sync(deviceId, stateVersion).catch((err: unknown) => {
              ctx.log.warn(
                { err, deviceId },
                'director re-sign after an assignment failed; retried on the next read',
              );
            }),
      );
      this.#resigning.add(resign);
      void resign.finally(() => this.#resigning.delete(resign));
      return resign;
    });
    return Promise.all(resigns).then(() => undefined);
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
      resigns.push(this.announce(assigned, { app: job.app, targetPath: job.target_path, rollout: id }));
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
      const accepted = await lockAcceptedIds(ctx, trx, slice);
      const assigned = await assignMany(ctx, trx, accepted, job.app, job.target_path, id);
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
