/**
 * Worker threads (node-kit's WorkerPool on piscina, module rebuild-worker.ts) that run
 * `runRebuildJob`, so that decoding and hashing the files of a delta update overlap the staging the
 * main thread does meanwhile (apply/staging.ts). They start with the first delta job (starting one
 * takes about 0.1 s) and the engine keeps them while updates follow each other; between updates
 * they hold no buffers (`release`, told on a BroadcastChannel that idle workers listen to). A job's payload moves
 * to the worker (`run` leaves it detached) once a worker has answered; before that it is copied, so
 * that a pool that cannot start leaves the job to the calling thread. Jobs go to the calling thread
 * while no worker can take them; the jobs a worker held when it stopped fail with FLT_INTERNAL
 * (the caller declines those deltas): slower, never wrong.
 */
import { randomUUID } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { WorkerPool, ownedBuffers } from '@flotilla/node-kit';
import { RebuildBuffers, runRebuildJob } from './rebuild-job.js';
import type { RebuildJob, RebuildOutcome } from './rebuild-job.js';

/**
 * The worker module: next to this one when compiled by tsc; in the self-contained agent bundle,
 * `rebuild-worker.mjs` next to the chunk this code is in (both in the bundle's lib/).
 */
const WORKER_MODULE = ['./rebuild-worker.js', './rebuild-worker.mjs']
  .map((name) => new URL(name, import.meta.url))
  .find((url) => existsSync(fileURLToPath(url)))?.href;

const STOPPED: RebuildOutcome = {
  kind: 'error',
  code: 'FLT_INTERNAL',
  message: 'the delta rebuild worker stopped',
};

export class RebuildPool {
  private pool: WorkerPool<RebuildJob, RebuildOutcome> | null = null;
  /** The workers start with the first job: an update whose files pair with no delta starts none. */
  private started = false;
  /** A job has come back from a worker: payloads may move there. */
  private proven = false;
  private buffers: RebuildBuffers | null = null;
  private closing = false;
  private warned = false;
  private readonly releaseChannel = `flotilla-rebuild-release-${randomUUID()}`;

  /** `threads` workers (0: every job runs on the calling thread); `onLost` is told once if one fails. */
  constructor(
    private readonly threads: number,
    private readonly onLost?: () => void,
  ) {}

  /** Runs `job` on a free worker (or the calling thread, where none can take it). */
  async run(job: RebuildJob): Promise<RebuildOutcome> {
    if (!this.started && !this.closing) {
      this.started = true;
      this.pool = this.start();
    }
    const pool = this.pool;
    if (pool === null) return this.inThread(job);
    const moved = this.proven ? ownedBuffers(job.payload) : [];
    try {
      const outcome = await pool.run(job, moved);
      this.proven = true;
      return outcome;
    } catch {
      if (this.pool === pool) {
        this.pool = null;
        void pool.close();
        if (!this.closing && !this.warned) {
          this.warned = true;
          this.onLost?.();
        }
      }
      // A payload that moved to the worker went with it: that delta is declined.
      return moved.length > 0 || this.closing ? STOPPED : this.inThread(job);
    }
  }

  /** Drops every buffer a delta phase grew (a large file's base and target stay otherwise). */
  release(): void {
    if (this.pool !== null) {
      const channel = new BroadcastChannel(this.releaseChannel);
      channel.postMessage('release');
      channel.close();
    }
    this.buffers = null;
  }

  async close(): Promise<void> {
    this.closing = true;
    const pool = this.pool;
    this.pool = null;
    this.buffers = null;
    await pool?.close();
  }

  private start(): WorkerPool<RebuildJob, RebuildOutcome> | null {
    if (this.threads <= 0) return null;
    try {
      // A tree without the worker modules (an agent bundle built without them) cannot start any:
      // rebuilds run on the calling thread, as with `threads` 0, and the agent says so.
      if (WORKER_MODULE === undefined) throw new Error('rebuild-worker module missing');
      return new WorkerPool({
        filename: WORKER_MODULE,
        threads: this.threads,
        keepThreads: this.threads,
        workerData: { releaseChannel: this.releaseChannel },
        listenWhileIdle: true,
      });
    } catch {
      this.warned = true;
      this.onLost?.();
      return null;
    }
  }

  private inThread(job: RebuildJob): RebuildOutcome {
    this.buffers ??= new RebuildBuffers();
    return runRebuildJob(job, this.buffers);
  }
}
