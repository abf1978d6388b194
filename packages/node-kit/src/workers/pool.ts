/**
 * Worker threads on piscina: a pool of `threads` workers that each load an ES module whose default
 * export runs one task (a function of a structured-clonable value). Idle workers do not keep the
 * process up; `close` ends them. Used for CPU-heavy work (delta encoding on the server, delta
 * rebuilds on the agent) so the event loop keeps answering meanwhile.
 */
import { FlotillaError } from '@flotilla/protocol';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina, move, workerData } from 'piscina';

export interface WorkerPoolOptions {
  /** `file:` URL (or absolute path) of the compiled worker module. */
  filename: string;
  /** Most threads at once (at least 1). */
  threads: number;
  /** Threads started at once and kept (default 0: started with the first task). */
  keepThreads?: number;
  /** How long an idle thread beyond `keepThreads` lives, in milliseconds (default: forever). */
  idleTimeoutMs?: number;
  /** Given to each worker (piscina's `workerData`): structured-clonable. */
  workerData?: unknown;
  /**
   * Idle workers keep running their event loop (piscina's atomics off), so they can react to
   * messages between tasks (a BroadcastChannel, for example). Default false.
   */
  listenWhileIdle?: boolean;
  /** Told of a worker error that belongs to no task (while the pool is open). */
  onError?: (error: unknown) => void;
}

/**
 * Not compiled: a CommonJS file next to this module's source (dist/src/workers → src/workers); in
 * the self-contained agent bundle, a copy next to the bundled code (lib/esm-task.cjs).
 */
const ESM_TASK_ENTRY = ['../../../src/workers/esm-task.cjs', './esm-task.cjs']
  .map((name) => fileURLToPath(new URL(name, import.meta.url)))
  .find((path) => existsSync(path));

interface PoolData {
  module: string;
  data: unknown;
}

function moduleUrl(filename: string): string {
  return filename.startsWith('file:') ? filename : pathToFileURL(filename).href;
}

export class WorkerPool<Task, Result> {
  private readonly pool: Piscina<Task, Result>;
  private closed = false;

  constructor(options: WorkerPoolOptions) {
    const threads = Math.max(1, options.threads);
    if (ESM_TASK_ENTRY === undefined)
      throw new FlotillaError(
        'FLT_INTERNAL',
        'the worker entry esm-task.cjs is missing from this installation',
      );
    this.pool = new Piscina<Task, Result>({
      // Each worker runs esm-task.cjs, which imports the task module (why: that file's comment).
      filename: ESM_TASK_ENTRY,
      minThreads: Math.min(options.keepThreads ?? 0, threads),
      maxThreads: threads,
      idleTimeout: options.idleTimeoutMs ?? Number.POSITIVE_INFINITY,
      workerData: { module: moduleUrl(options.filename), data: options.workerData } satisfies PoolData,
      ...(options.listenWhileIdle === true && { atomics: 'disabled' as const }),
    });
    // Never an uncaught 'error' event: a late reply of a worker ended by `close` lands here too.
    this.pool.on('error', (error: unknown) => {
      if (!this.closed) options.onError?.(error);
    });
  }

  /** Runs `task` on a free worker (or after the queued ones); `transfer` moves those buffers there. */
  run(task: Task, transfer: readonly ArrayBuffer[] = []): Promise<Result> {
    if (this.closed) return Promise.reject(new FlotillaError('FLT_UNAVAILABLE', 'the worker pool is closed'));
    return this.pool.run(task, { transferList: [...transfer] });
  }

  /** Ends the workers now; tasks still running or queued fail. */
  close(): Promise<void> {
    this.closed = true;
    return this.pool.destroy();
  }

  /** Ends the workers once the tasks given so far are done. */
  drain(): Promise<void> {
    this.closed = true;
    return this.pool.close();
  }
}

/**
 * The memory of `views` that may be moved (not copied) to another thread: only buffers that own
 * their whole ArrayBuffer (not slices of Node's pool). A moved buffer is unusable afterwards.
 */
export function ownedBuffers(...views: Uint8Array[]): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const view of views) {
    const { buffer } = view;
    if (buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buffer.byteLength)
      out.push(buffer);
  }
  return out;
}

/**
 * In a worker module: `value` as a task's result whose `views` move back to the pool's thread
 * where they own their memory (piscina's Transferable protocol), instead of being copied.
 */
export function transferring<T>(value: T, ...views: Uint8Array[]): T {
  const wrapped = {
    [Piscina.transferableSymbol]: ownedBuffers(...views),
    [Piscina.valueSymbol]: value,
  };
  return move(wrapped as unknown as Parameters<typeof move>[0]) as unknown as T;
}

/** In a worker module: the pool's `workerData` (see WorkerPoolOptions). */
export function poolWorkerData<T>(): T {
  return (workerData as PoolData).data as T;
}
