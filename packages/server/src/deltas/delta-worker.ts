/**
 * Runs `encodeDelta` (zstd, CPU-heavy: up to seconds per large file) on one worker thread (node-kit's
 * WorkerPool on piscina), so the event loop keeps answering requests (health checks, device polls)
 * while a delta is computed. One job at a time; the caller queues. The worker is started on first
 * use, replaced after a crash, and `close` ends it. Should the worker not start at all, encoding
 * falls back to the calling thread (logged once): slower to answer other requests, never wrong.
 */
import { WorkerPool, ownedBuffers } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import { encodeDelta } from '@flotilla/store';
import type { DeltaEncodeReply, DeltaEncodeTask } from '@flotilla/store';
import type { Logger } from 'pino';

/** The compiled worker module in @flotilla/store (found the same from `dist` or from sources). */
const WORKER_MODULE = import.meta.resolve('@flotilla/store/delta-encode-worker');

const shuttingDown = () => new FlotillaError('FLT_UNAVAILABLE', 'the server is shutting down');

export class DeltaEncoder {
  private pool: WorkerPool<DeltaEncodeTask, DeltaEncodeReply> | null = null;
  /** A job has come back from a worker: the pool works, and buffers may move there. */
  private proven = false;
  private busy = false;
  private inThread = false;
  private closed = false;

  constructor(private readonly log: Logger) {}

  /**
   * The delta of `target` against `base`. Both buffers may be handed over to the worker (their
   * memory moves there): do not use them after calling.
   */
  async encode(base: Buffer, target: Buffer, level: number): Promise<Buffer> {
    if (this.closed) throw shuttingDown();
    if (this.busy) throw new FlotillaError('FLT_INTERNAL', 'the delta worker runs one job at a time');
    if (this.inThread) return encodeDelta(base, target, { level });
    const pool = (this.pool ??= new WorkerPool({ filename: WORKER_MODULE, threads: 1 }));
    // Until a worker has answered once, the buffers are copied, so the calling thread can still
    // encode them should the worker not start.
    const transfer = this.proven ? ownedBuffers(base, target) : [];
    let reply: DeltaEncodeReply;
    this.busy = true;
    try {
      reply = await pool.run({ base, target, level }, transfer);
    } catch (error) {
      if (this.closed) throw shuttingDown();
      if (this.pool === pool) this.pool = null;
      void pool.close();
      if (!this.proven) {
        this.inThread = true;
        this.log.warn(
          { err: error },
          'the delta worker thread did not start; deltas are computed on the main thread',
        );
        return encodeDelta(base, target, { level });
      }
      this.log.error({ err: error }, 'delta worker failed; it is restarted for the next delta');
      throw new FlotillaError('FLT_INTERNAL', 'the delta worker stopped while computing', { cause: error });
    } finally {
      this.busy = false;
    }
    this.proven = true;
    if ('error' in reply) throw new FlotillaError('FLT_INTERNAL', `delta encoding failed: ${reply.error}`);
    const { payload } = reply;
    return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  }

  /** Ends the worker; a job in progress fails with FLT_UNAVAILABLE. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = null;
    await pool?.close();
  }
}
