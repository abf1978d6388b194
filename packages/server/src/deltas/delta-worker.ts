/**
 * Runs `encodeDelta` (zstd, CPU-heavy: up to seconds per large file) on one worker thread, so the
 * event loop keeps answering requests (health checks, device polls) while a delta is computed.
 * One job at a time; the caller queues. The worker is started on first use, restarted after a
 * crash, and `close` ends it. Should a worker not start at all, encoding falls back to the calling
 * thread (logged once): slower to answer other requests, never wrong.
 */
import { Worker } from 'node:worker_threads';
import { FlotillaError } from '@flotilla/protocol';
import { encodeDelta } from '@flotilla/store';
import type { Logger } from 'pino';

/**
 * The worker's code: plain JavaScript that loads the compiled `@flotilla/store` (resolved by the
 * parent), so it runs the same whether the server runs from `dist` or its sources under tsx.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.storeUrl).then(({ encodeDelta }) => {
  parentPort.on('message', (job) => {
    try {
      const payload = encodeDelta(job.base, job.target, { level: job.level });
      parentPort.postMessage({ id: job.id, payload });
    } catch (error) {
      parentPort.postMessage({ id: job.id, error: String((error && error.message) || error) });
    }
  });
  parentPort.postMessage({ ready: true });
});
`;

interface Pending {
  id: number;
  resolve: (payload: Buffer) => void;
  reject: (error: unknown) => void;
}

interface Reply {
  id?: number;
  ready?: boolean;
  payload?: Uint8Array;
  error?: string;
}

/** The buffers to move to the worker: only those that own their whole memory (not pool slices). */
function transferable(...buffers: Buffer[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const b of buffers) {
    if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer)
      out.push(b.buffer);
  }
  return out;
}

export class DeltaEncoder {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private pending: Pending | null = null;
  private nextId = 1;
  private inThread = false;
  private closed = false;

  constructor(private readonly log: Logger) {}

  /**
   * The delta of `target` against `base`. Both buffers may be handed over to the worker (their
   * memory moves there): do not use them after calling.
   */
  async encode(base: Buffer, target: Buffer, level: number): Promise<Buffer> {
    if (this.closed) throw new FlotillaError('FLT_UNAVAILABLE', 'the server is shutting down');
    if (this.pending) throw new FlotillaError('FLT_INTERNAL', 'the delta worker runs one job at a time');
    if (!this.inThread) {
      try {
        await this.start();
      } catch (error) {
        if (this.closed) throw error;
        this.inThread = true;
        this.log.warn(
          { err: error },
          'the delta worker thread did not start; deltas are computed on the main thread',
        );
      }
    }
    if (this.inThread) return encodeDelta(base, target, { level });
    const worker = this.worker!;
    return new Promise<Buffer>((resolve, reject) => {
      const id = this.nextId++;
      this.pending = { id, resolve, reject };
      worker.ref();
      worker.postMessage({ id, base, target, level }, transferable(base, target));
    });
  }

  /** Ends the worker; a job in progress fails with FLT_UNAVAILABLE. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    this.ready = null;
    this.fail(new FlotillaError('FLT_UNAVAILABLE', 'the server is shutting down'));
    if (worker) await worker.terminate();
  }

  private start(): Promise<void> {
    if (this.ready) return this.ready;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { storeUrl: import.meta.resolve('@flotilla/store') },
    });
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      let started = false;
      worker.on('message', (reply: Reply) => {
        if (reply.ready) {
          started = true;
          worker.unref();
          resolve();
          return;
        }
        this.settle(reply);
      });
      const lost = (error: Error) => {
        if (this.worker === worker) {
          this.worker = null;
          this.ready = null;
        }
        if (!started) reject(error);
        this.fail(
          new FlotillaError('FLT_INTERNAL', 'the delta worker stopped while computing', { cause: error }),
        );
      };
      worker.on('error', (error) => {
        this.log.error({ err: error }, 'delta worker failed; it is restarted for the next delta');
        lost(error);
      });
      worker.on('exit', (code) => lost(new Error(`the delta worker exited with code ${code}`)));
    });
    return this.ready;
  }

  private settle(reply: Reply): void {
    const job = this.pending;
    if (!job || job.id !== reply.id) return;
    this.pending = null;
    this.worker?.unref();
    if (reply.error !== undefined || reply.payload === undefined)
      job.reject(new FlotillaError('FLT_INTERNAL', `delta encoding failed: ${reply.error ?? 'no payload'}`));
    else job.resolve(Buffer.from(reply.payload.buffer, reply.payload.byteOffset, reply.payload.byteLength));
  }

  private fail(error: unknown): void {
    const job = this.pending;
    this.pending = null;
    job?.reject(error);
  }
}
