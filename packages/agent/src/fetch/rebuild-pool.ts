/**
 * Worker threads that run `runRebuildJob` (rebuild-job.ts), so that decoding and hashing the files
 * of a delta update overlap the staging the main thread does meanwhile (apply/staging.ts). The
 * agent starts them with its first download and keeps them (starting one takes about 0.1 s, as
 * long as a whole small update); between updates they hold no buffers (`release`). A job's
 * payload moves to the worker (`run` leaves it detached). Jobs go to the calling thread while no
 * worker can take them (one that cannot start, or stopped); the jobs a worker held when it stopped
 * fail with FLT_INTERNAL (the caller declines those deltas): slower, never wrong.
 */
import { Worker } from 'node:worker_threads';
import { RebuildBuffers, runRebuildJob } from './rebuild-job.js';
import type { RebuildJob, RebuildOutcome } from './rebuild-job.js';

/**
 * The memory of `bytes` to move (not copy) to the other thread: only where it owns the whole
 * ArrayBuffer (a 12 MB delta copied there and back cost tens of milliseconds of fresh memory).
 */
function ownBuffers(bytes: Uint8Array): ArrayBuffer[] {
  const { buffer } = bytes;
  return buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength
    ? [buffer]
    : [];
}

/**
 * The worker's code: plain JavaScript that loads the compiled rebuild-job module (resolved by the
 * parent), as the server's delta worker does.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
${ownBuffers.toString()}
import(workerData.jobUrl).then(({ RebuildBuffers, runRebuildJob }) => {
  let buffers = new RebuildBuffers();
  parentPort.on('message', ({ id, job, release }) => {
    if (release) {
      buffers = new RebuildBuffers();
      return;
    }
    let outcome;
    try {
      outcome = runRebuildJob(job, buffers);
    } catch (error) {
      outcome = { kind: 'error', code: 'FLT_INTERNAL', message: String((error && error.message) || error) };
    }
    const back = outcome.kind === 'base-changed' ? ownBuffers(outcome.payload) : [];
    parentPort.postMessage({ id, outcome }, back);
  });
  parentPort.postMessage({ ready: true });
});
`;

interface Reply {
  id?: number;
  ready?: boolean;
  outcome?: RebuildOutcome;
}

class RebuildWorker {
  private readonly ready: Promise<boolean>;
  private readonly worker: Worker;
  private readonly waiting = new Map<
    number,
    { job: RebuildJob; settle: (outcome: RebuildOutcome) => void }
  >();
  private nextId = 1;
  private starting = 0;
  private alive = true;
  private closing = false;

  constructor(
    private readonly fallback: (job: RebuildJob) => RebuildOutcome,
    onLost: () => void,
  ) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { jobUrl: new URL('./rebuild-job.js', import.meta.url).href },
    });
    this.worker.unref();
    this.ready = new Promise<boolean>((resolve) => {
      this.worker.on('message', (reply: Reply) => {
        if (reply.ready) return resolve(true);
        const waiting = reply.id === undefined ? undefined : this.waiting.get(reply.id);
        if (waiting === undefined || reply.outcome === undefined) return;
        this.waiting.delete(reply.id!);
        if (this.waiting.size === 0) this.worker.unref();
        waiting.settle(reply.outcome);
      });
      const lost = () => {
        if (!this.alive) return;
        this.alive = false;
        resolve(false);
        // Jobs it still held are lost with their payloads (moved to it): their deltas are
        // declined, and those files' chunks fetched instead.
        for (const { settle } of this.waiting.values())
          settle({ kind: 'error', code: 'FLT_INTERNAL', message: 'the delta rebuild worker stopped' });
        this.waiting.clear();
        if (!this.closing) onLost();
      };
      this.worker.on('error', lost);
      this.worker.on('exit', lost);
    });
  }

  get busy(): number {
    return this.waiting.size + this.starting;
  }

  async run(job: RebuildJob): Promise<RebuildOutcome> {
    this.starting++;
    const ready = await this.ready;
    this.starting--;
    if (!ready || !this.alive) return this.fallback(job);
    const id = this.nextId++;
    return new Promise<RebuildOutcome>((settle) => {
      this.waiting.set(id, { job, settle });
      this.worker.ref(); // a job in progress keeps the process up; an idle worker does not
      this.worker.postMessage({ id, job }, ownBuffers(job.payload));
    });
  }

  /** Drops the worker's buffers (after a delta phase). */
  release(): void {
    if (this.alive) this.worker.postMessage({ release: true });
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }
}

export class RebuildPool {
  private readonly workers: RebuildWorker[] = [];
  private buffers: RebuildBuffers | null = null;
  private warned = false;

  /** `threads` workers (0: every job runs on the calling thread); `onLost` is told once if one fails. */
  constructor(threads: number, onLost?: () => void) {
    const lost = () => {
      if (this.warned) return;
      this.warned = true;
      onLost?.();
    };
    for (let i = 0; i < threads; i++) this.workers.push(new RebuildWorker((job) => this.inThread(job), lost));
  }

  /** Runs `job` on the least busy worker. */
  run(job: RebuildJob): Promise<RebuildOutcome> {
    const worker = this.workers.reduce<RebuildWorker | undefined>(
      (best, w) => (best === undefined || w.busy < best.busy ? w : best),
      undefined,
    );
    if (worker === undefined) return Promise.resolve(this.inThread(job));
    return worker.run(job);
  }

  /** Drops every buffer a delta phase grew (a large file's base and target stay otherwise). */
  release(): void {
    for (const worker of this.workers) worker.release();
    this.buffers = null;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    this.buffers = null;
  }

  private inThread(job: RebuildJob): RebuildOutcome {
    this.buffers ??= new RebuildBuffers();
    return runRebuildJob(job, this.buffers);
  }
}
