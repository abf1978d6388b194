/**
 * Job state and image metadata in the server's database (never in Redis). Every transition is a
 * conditional UPDATE, so that two workers (or a worker presumed dead and its successor) can never
 * both publish: only the worker that holds the job (`worker` column) at commit time may finish it.
 */
import { randomUUID } from 'node:crypto';
import type { Updateable } from 'kysely';
import type { Image, ImageJob } from '@flotilla/protocol';
import type {
  Clock,
  GatewayAudit,
  GatewayAuditEntry,
  GatewayDb,
  GatewayImagesTable,
  GatewayJobsTable,
  GatewayTx,
} from './tables.js';
import { writeTransaction } from './tables.js';

export interface ImageKey {
  platform: string;
  image: string;
  arch: string;
}

export interface PullRequestInput extends ImageKey {
  /** Username (shown in `images ls`). */
  requestedBy: string;
  /** User id (the audit log's actor). */
  actorId: string;
  private: boolean;
  users: string[];
  groups: string[];
}

export interface PullOutcome {
  image: GatewayImagesTable;
  /** The job converting the image (shared by concurrent pulls), or null when it was ready. */
  job: GatewayJobsTable | null;
  /** true when this call queued a new job (the caller enqueues it). */
  created: boolean;
}

export interface ImportedImage {
  contentId: string;
  manifestDigest: string;
  path: string;
  sizeBytes: number;
}

export class ImageStore {
  constructor(
    readonly db: GatewayDb,
    private readonly clock: Clock,
  ) {}

  private now(): string {
    return this.clock.now().toISOString();
  }

  /** Queues an import unless the image is ready or being imported; concurrent calls share a job. */
  async requestPull(
    input: PullRequestInput,
    audit: GatewayAudit,
    sourceIp: string | null,
  ): Promise<PullOutcome> {
    return writeTransaction(this.db, async (tx) => {
      const now = this.now();
      const existing = await this.image(input, tx);
      if (existing?.status === 'ready') return { image: existing, job: null, created: false };
      if (existing?.status === 'pending' && existing.job_id !== null) {
        const job = await this.job(existing.job_id, tx);
        if (job && (job.state === 'queued' || job.state === 'running'))
          return { image: existing, job, created: false };
      }
      const job: GatewayJobsTable = {
        id: randomUUID(),
        platform: input.platform,
        image: input.image,
        arch: input.arch,
        state: 'queued',
        phase: 'queued',
        progress: 0,
        attempts: 0,
        worker: null,
        error: null,
        requested_by: input.requestedBy,
        created_at: now,
        started_at: null,
        finished_at: null,
      };
      if (existing) {
        // A failed (or orphaned) image: take it over with a new job, unless another request did first.
        const taken = await tx
          .updateTable('gateway_images')
          .set({ status: 'pending', job_id: job.id, error: null })
          .where('platform', '=', input.platform)
          .where('image', '=', input.image)
          .where('arch', '=', input.arch)
          .where((eb) =>
            existing.job_id === null ? eb('job_id', 'is', null) : eb('job_id', '=', existing.job_id),
          )
          .executeTakeFirst();
        if (taken.numUpdatedRows === 0n) return this.shared(input, tx);
      } else {
        const inserted = await tx
          .insertInto('gateway_images')
          .values({
            platform: input.platform,
            image: input.image,
            arch: input.arch,
            status: 'pending',
            job_id: job.id,
            content_id: null,
            manifest_digest: null,
            path: null,
            size_bytes: null,
            private: input.private ? 1 : 0,
            users: JSON.stringify(input.users),
            groups: JSON.stringify(input.groups),
            created_by: input.requestedBy,
            created_at: now,
            ready_at: null,
            last_used_at: now,
            error: null,
          })
          .onConflict((oc) => oc.columns(['platform', 'image', 'arch']).doNothing())
          .executeTakeFirst();
        if ((inserted.numInsertedOrUpdatedRows ?? 0n) === 0n) return this.shared(input, tx);
      }
      await tx.insertInto('gateway_jobs').values(job).execute();
      await audit(
        {
          actorType: 'user',
          actorId: input.actorId,
          action: 'image.pull',
          subjectType: 'image',
          subjectId: subjectOf(input),
          sourceIp,
          details: { job: job.id, private: input.private },
        },
        tx,
      );
      const image = await this.image(input, tx);
      return { image: image as GatewayImagesTable, job, created: true };
    });
  }

  /** Another request created the row first: answer with its job. */
  private async shared(key: ImageKey, tx: GatewayTx): Promise<PullOutcome> {
    const image = (await this.image(key, tx)) as GatewayImagesTable;
    const job = image.job_id === null ? null : ((await this.job(image.job_id, tx)) ?? null);
    return { image, job: image.status === 'ready' ? null : job, created: false };
  }

  async image(key: ImageKey, db: GatewayTx = this.db): Promise<GatewayImagesTable | undefined> {
    return db
      .selectFrom('gateway_images')
      .selectAll()
      .where('platform', '=', key.platform)
      .where('image', '=', key.image)
      .where('arch', '=', key.arch)
      .executeTakeFirst();
  }

  async job(id: string, db: GatewayTx = this.db): Promise<GatewayJobsTable | undefined> {
    return db.selectFrom('gateway_jobs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async images(platform?: string): Promise<GatewayImagesTable[]> {
    let q = this.db.selectFrom('gateway_images').selectAll();
    if (platform !== undefined) q = q.where('platform', '=', platform);
    return q.orderBy('platform').orderBy('image').orderBy('arch').execute();
  }

  /** Jobs not finished (queued, or running on a worker that may have died): re-queued at start. */
  async unfinishedJobs(): Promise<GatewayJobsTable[]> {
    return this.db
      .selectFrom('gateway_jobs')
      .selectAll()
      .where('state', 'in', ['queued', 'running'])
      .execute();
  }

  /**
   * Takes the job for `worker` (a redelivered job moves to the new worker: its predecessor, if
   * still alive, can no longer commit). Null when the job is finished or gone.
   */
  async claim(id: string, worker: string): Promise<GatewayJobsTable | null> {
    const now = this.now();
    const r = await this.db
      .updateTable('gateway_jobs')
      .set((eb) => ({
        state: 'running',
        phase: 'starting',
        worker,
        attempts: eb('attempts', '+', 1),
        started_at: now,
        error: null,
      }))
      .where('id', '=', id)
      .where('state', 'in', ['queued', 'running'])
      .executeTakeFirst();
    if (r.numUpdatedRows === 0n) return null;
    return (await this.job(id)) ?? null;
  }

  /** Records progress; false when the job has moved to another worker (stop working on it). */
  async progress(id: string, worker: string, phase: string, progress: number): Promise<boolean> {
    const r = await this.db
      .updateTable('gateway_jobs')
      .set({ phase, progress: Math.max(0, Math.min(1, progress)) })
      .where('id', '=', id)
      .where('worker', '=', worker)
      .where('state', '=', 'running')
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Publishes the image in one transaction with the job's completion and its audit entry. False
   * (nothing published) when the job is no longer this worker's.
   */
  async complete(id: string, worker: string, result: ImportedImage, audit: GatewayAudit): Promise<boolean> {
    return writeTransaction(this.db, async (tx) => {
      const now = this.now();
      const r = await tx
        .updateTable('gateway_jobs')
        .set({ state: 'done', phase: 'done', progress: 1, finished_at: now })
        .where('id', '=', id)
        .where('worker', '=', worker)
        .where('state', '=', 'running')
        .executeTakeFirst();
      if (r.numUpdatedRows === 0n) return false;
      await this.settleImage(
        tx,
        id,
        {
          status: 'ready',
          content_id: result.contentId,
          manifest_digest: result.manifestDigest,
          path: result.path,
          size_bytes: result.sizeBytes,
          ready_at: now,
          last_used_at: now,
          error: null,
        },
        (job) => ({
          actorType: 'system',
          actorId: worker,
          action: 'image.ready',
          subjectType: 'image',
          subjectId: subjectOf(job),
          details: { job: id, id: result.contentId, path: result.path, attempts: job.attempts },
        }),
        audit,
      );
      return true;
    });
  }

  /** The finished job's image row (still this job's) takes `set`, and the outcome is audited, in `tx`. */
  private async settleImage(
    tx: GatewayTx,
    id: string,
    set: Updateable<GatewayImagesTable>,
    entry: (job: GatewayJobsTable) => GatewayAuditEntry,
    audit: GatewayAudit,
  ): Promise<void> {
    const job = (await this.job(id, tx)) as GatewayJobsTable;
    await tx
      .updateTable('gateway_images')
      .set(set)
      .where('platform', '=', job.platform)
      .where('image', '=', job.image)
      .where('arch', '=', job.arch)
      .where('job_id', '=', id)
      .execute();
    await audit(entry(job), tx);
  }

  /** Records a failed attempt; with `final`, the job and its image fail. */
  async fail(id: string, worker: string, error: string, final: boolean, audit: GatewayAudit): Promise<void> {
    await writeTransaction(this.db, async (tx) => {
      const now = this.now();
      const r = await tx
        .updateTable('gateway_jobs')
        .set(
          final
            ? { state: 'failed', phase: 'failed', error, finished_at: now }
            : { state: 'queued', phase: 'retrying', error },
        )
        .where('id', '=', id)
        .where('worker', '=', worker)
        .where('state', '=', 'running')
        .executeTakeFirst();
      if (r.numUpdatedRows === 0n || !final) return;
      await this.settleImage(
        tx,
        id,
        { status: 'failed', error },
        (job) => ({
          actorType: 'system',
          actorId: worker,
          action: 'image.failed',
          subjectType: 'image',
          subjectId: subjectOf(job),
          details: { job: id, error, attempts: job.attempts },
        }),
        audit,
      );
    });
  }

  /** Marks a lookup: the image counts as used now. */
  async touch(key: ImageKey): Promise<string> {
    const now = this.now();
    await this.db
      .updateTable('gateway_images')
      .set({ last_used_at: now })
      .where('platform', '=', key.platform)
      .where('image', '=', key.image)
      .where('arch', '=', key.arch)
      .execute();
    return now;
  }

  /** Deletes the row if it is still the one the caller saw (same job), with its audit entry. */
  async delete(
    row: GatewayImagesTable,
    entry: Parameters<GatewayAudit>[0],
    audit: GatewayAudit,
  ): Promise<boolean> {
    return writeTransaction(this.db, async (tx) => {
      const r = await tx
        .deleteFrom('gateway_images')
        .where('platform', '=', row.platform)
        .where('image', '=', row.image)
        .where('arch', '=', row.arch)
        .where((eb) => (row.job_id === null ? eb('job_id', 'is', null) : eb('job_id', '=', row.job_id)))
        .where('last_used_at', '=', row.last_used_at)
        .executeTakeFirst();
      if (r.numDeletedRows === 0n) return false;
      await audit(entry, tx);
      return true;
    });
  }

  /** Ready images not used since `before`. */
  async unusedSince(before: string): Promise<GatewayImagesTable[]> {
    return this.db
      .selectFrom('gateway_images')
      .selectAll()
      .where('status', '=', 'ready')
      .where('last_used_at', '<', before)
      .execute();
  }

  /** Other ready rows (any platform) still using a cached file. */
  async usersOfContent(contentId: string): Promise<number> {
    const r = await this.db
      .selectFrom('gateway_images')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('content_id', '=', contentId)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }
}

export function subjectOf(key: ImageKey): string {
  return `${key.platform}/${key.image}@${key.arch}`;
}

export function toImageJob(j: GatewayJobsTable): ImageJob {
  return {
    id: j.id,
    platform: j.platform,
    image: j.image,
    arch: j.arch,
    state: j.state,
    phase: j.phase,
    progress: j.progress,
    attempts: j.attempts,
    worker: j.worker,
    error: j.error,
    createdAt: j.created_at,
    startedAt: j.started_at,
    finishedAt: j.finished_at,
  };
}

export function toImage(r: GatewayImagesTable, expirationTimeoutMs: number): Image {
  return {
    platform: r.platform,
    image: r.image,
    arch: r.arch,
    status: r.status,
    id: r.content_id,
    path: r.path,
    sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
    manifestDigest: r.manifest_digest,
    private: r.private === 1,
    users: JSON.parse(r.users) as string[],
    groups: JSON.parse(r.groups) as string[],
    createdBy: r.created_by,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    expiresAt:
      expirationTimeoutMs > 0 && r.status === 'ready'
        ? new Date(Date.parse(r.last_used_at) + expirationTimeoutMs).toISOString()
        : null,
    jobId: r.job_id,
    error: r.error,
  };
}
