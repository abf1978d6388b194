/**
 * Jobs through BullMQ on Redis: the server (or any process that queues) adds a job named by the
 * database job id, so queuing twice is a no-op; workers anywhere take them with their own
 * concurrency. A worker that dies mid-job stops renewing its lock; BullMQ's stalled-job check
 * moves the job back to the queue and another worker takes it over (`ImageStore.claim`).
 */
import { Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { JobQueue } from './queue.js';
import { runJob } from './runner.js';
import type { JobRunnerDeps } from './runner.js';

export const QUEUE_NAME = 'flotilla-gateway-imports';

export interface BullTuning {
  /** How long a job's lock lives without renewal, ms (a dead worker's job waits this long). */
  lockDurationMs?: number;
  /** How often workers look for stalled jobs, ms. */
  stalledIntervalMs?: number;
  /** BullMQ key prefix (tests use their own). */
  prefix?: string;
}

interface JobData {
  jobId: string;
}

export class BullJobQueue implements JobQueue {
  private readonly queue: Queue<JobData>;

  constructor(
    redisUrl: string,
    private readonly retry: { attempts: number; backoffMs: number },
    tuning: BullTuning = {},
  ) {
    this.queue = new Queue<JobData>(QUEUE_NAME, {
      connection: { url: redisUrl },
      ...(tuning.prefix === undefined ? {} : { prefix: tuning.prefix }),
    });
  }

  async enqueue(id: string): Promise<void> {
    await this.queue.add(
      'import',
      { jobId: id },
      {
        jobId: id,
        attempts: this.retry.attempts,
        backoff: { type: 'exponential', delay: this.retry.backoffMs },
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

export interface BullWorkerHandle {
  close(): Promise<void>;
}

/** A worker taking import jobs from Redis until closed. */
export async function startBullWorker(
  deps: JobRunnerDeps,
  redisUrl: string,
  log: Logger,
  tuning: BullTuning = {},
): Promise<BullWorkerHandle> {
  const worker = new Worker<JobData>(
    QUEUE_NAME,
    async (job) => {
      const attempts = job.opts.attempts ?? 1;
      return runJob(deps, job.data.jobId, job.attemptsMade + 1 >= attempts);
    },
    {
      connection: { url: redisUrl, maxRetriesPerRequest: null },
      concurrency: deps.config.concurrency,
      lockDuration: tuning.lockDurationMs ?? 30_000,
      stalledInterval: tuning.stalledIntervalMs ?? 30_000,
      // A job whose worker died twice fails its BullMQ entry; the database row stays re-queueable.
      maxStalledCount: 2,
      ...(tuning.prefix === undefined ? {} : { prefix: tuning.prefix }),
    },
  );
  worker.on('error', (err) => log.error({ err }, 'gateway worker: queue error'));
  await worker.waitUntilReady();
  log.info({ worker: deps.workerId, concurrency: deps.config.concurrency }, 'gateway worker ready');
  return { close: () => worker.close() };
}
