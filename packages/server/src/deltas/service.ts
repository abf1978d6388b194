/**
 * File deltas (issue 4): for a (target file, base file) pair, a zstd frame of the target's whole
 * content compressed with the base's content as raw dictionary (`zstd --patch-from`), or "none" when
 * the device is better off fetching the target's chunks. Answers come from the on-disk cache when
 * they can; otherwise they are computed one pair at a time (base and target content in memory for
 * that pair only) on the encoder's worker thread, device requests before background precomputation,
 * and a pair asked for by several requests at once is computed once.
 */
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import {
  DeltaKind,
  deltaPairKey,
  mapBounded,
  parseFileObject,
  readFileContent,
  usableAsDeltaBase,
} from '@flotilla/store';
import type { DeltaRecord, FileObject } from '@flotilla/store';
import type { Logger } from 'pino';
import type { CachedDelta, DeltaCache } from './delta-cache.js';
import type { DeltaEncoder } from './delta-worker.js';
import type { DeltaMetrics } from './metrics.js';
import type { ObjectStore } from '../objects/store.js';
import { WeightedLru } from '@flotilla/node-kit';

/** Device requests go first; release precomputation fills the gaps. */
export type DeltaPriority = 'request' | 'background';

export interface DeltaServiceOptions {
  store: ObjectStore;
  cache: DeltaCache;
  encoder: DeltaEncoder;
  metrics: DeltaMetrics;
  /** zstd level (config `deltaLevel`). */
  level: number;
  /** Largest base or target file a delta is made for (config `maxDeltaFileBytes`). */
  maxFileBytes: number;
  /**
   * A delta is cached on disk only when it is at least this many percent smaller than the chunks
   * it replaces (config `deltaCacheMinSavingPercent`); it is served either way.
   */
  minSavingPercent: number;
  log: Logger;
}

/** File objects read (or chunk sizes asked) at once: enough to keep libuv's thread pool busy. */
const READ_CONCURRENCY = 16;
/** Records read (or queued for computation) ahead of the one being sent... */
const READ_AHEAD = 16;
/** ...while those already read and not yet sent hold less than this. */
const READ_AHEAD_BYTES = 16 * 1024 * 1024;

/**
 * Parsed file objects kept for the next requests, counted as 1 + their chunks: a device fleet
 * updating between two releases asks for the same pairs again and again.
 */
const RECENT_FILES_WEIGHT = 64 * 1024;

const NONE: CachedDelta = Object.freeze({ kind: DeltaKind.none, payload: Buffer.alloc(0) });

/** Parse failures that mean "this object is not a file object" (a directory, or a chunk's bytes). */
const NOT_A_FILE = new Set([
  'FLT_MANIFEST_INVALID',
  'FLT_LIMIT_EXCEEDED',
  'FLT_PATH_UNSAFE',
  'FLT_MODE_UNSAFE',
]);

export class DeltaService {
  private readonly queues: Record<DeltaPriority, (() => void)[]> = { request: [], background: [] };
  private running = false;
  private closed = false;
  private readonly inFlight = new Map<string, Promise<CachedDelta>>();
  private readonly recentFiles = new WeightedLru<string, FileObject>({
    weigh: (file) => 1 + file.chunks.length,
    maxWeight: RECENT_FILES_WEIGHT,
  });

  constructor(private readonly opts: DeltaServiceOptions) {}

  /**
   * The parsed file objects of `ids`, checked before anything is streamed or computed:
   * FLT_OBJECT_MISSING listing unknown ids, FLT_VALIDATION listing ids that are not file objects.
   * Several objects are read at once (each read is a few thread-pool round trips that would
   * otherwise follow one another); the lists keep the order of `ids`. An object parsed by a recent
   * request is only checked to be still stored (one stat instead of a read, hash and parse).
   */
  async fileObjects(ids: Iterable<string>): Promise<Map<string, FileObject>> {
    const unique = [...new Set(ids)];
    const found = await mapBounded(unique, READ_CONCURRENCY, (id) => this.fileObject(id));
    const missing: string[] = [];
    const files = new Map<string, FileObject>();
    const notFiles: string[] = [];
    unique.forEach((id, index) => {
      const object = found[index]!;
      if (object === 'missing') missing.push(id);
      else if (object === 'not a file') notFiles.push(id);
      else files.set(id, object);
    });
    if (missing.length > 0)
      throw new FlotillaError('FLT_OBJECT_MISSING', `${missing.length} requested objects are not stored`, {
        details: { missing },
      });
    if (notFiles.length > 0)
      throw new FlotillaError(
        'FLT_VALIDATION',
        `${notFiles.length} requested ids are not file objects (a delta needs two files)`,
        { details: { notFiles } },
      );
    return files;
  }

  /**
   * One file object: one read (not `has` then a read; `missing` would also mark it as wanted). An
   * object read and verified before cannot have changed (content-addressed), only gone: one stat.
   */
  private async fileObject(id: string): Promise<FileObject | 'missing' | 'not a file'> {
    try {
      const known = this.recentFiles.get(id);
      if (known) return (await this.opts.store.size(id)) === undefined ? 'missing' : known;
      const file = parseFileObject(await this.opts.store.getObject(id), { expectedId: id });
      this.recentFiles.set(id, file);
      return file;
    } catch (error) {
      if (isFlotillaError(error) && error.code === 'FLT_OBJECT_MISSING') return 'missing';
      if (isFlotillaError(error) && NOT_A_FILE.has(error.code)) return 'not a file';
      throw error;
    }
  }

  /**
   * The records of `pairs`, in their order. The next pairs' records are read (or their
   * computations queued) while one is sent, a few at a time and within a byte budget, so cached
   * records do not wait for each other's disk reads one by one. Pairs whose key is in `declined`
   * are answered "none" at once (nothing read, computed or cached).
   */
  async *records(
    pairs: readonly { target: string; base: string }[],
    files: ReadonlyMap<string, FileObject>,
    priority: DeltaPriority = 'request',
    declined: ReadonlySet<string> = new Set(),
  ): AsyncGenerator<DeltaRecord> {
    const ahead: Promise<DeltaRecord>[] = [];
    let next = 0;
    let heldBytes = 0;
    const fill = () => {
      while (next < pairs.length && ahead.length < READ_AHEAD && heldBytes < READ_AHEAD_BYTES) {
        const { target, base } = pairs[next++]!;
        const record = (
          declined.has(deltaPairKey(target, base))
            ? Promise.resolve({ target, base, ...NONE })
            : this.record(target, base, files, priority)
        ).then((r) => {
          heldBytes += r.payload.length;
          return r;
        });
        // Awaited in turn below; until then a rejection must not count as unhandled.
        record.catch(() => undefined);
        ahead.push(record);
      }
    };
    fill();
    while (ahead.length > 0) {
      const record = await ahead.shift()!;
      heldBytes -= record.payload.length;
      fill();
      yield record;
    }
  }

  /** The record for one pair; never throws (a failed computation is answered "none" and logged). */
  async record(
    target: string,
    base: string,
    files: ReadonlyMap<string, FileObject>,
    priority: DeltaPriority = 'request',
  ): Promise<DeltaRecord> {
    return { target, base, ...(await this.answer(target, base, files, priority)) };
  }

  /**
   * What a device would fetch for the target file instead of a delta: the stored (compressed)
   * frames of the target's chunks that the base file does not hold.
   */
  async plainBytes(targetFile: FileObject, baseFile: FileObject): Promise<number> {
    const held = new Set(baseFile.chunks.map((c) => c.id));
    const ids = [...new Set(targetFile.chunks.map((c) => c.id))].filter((id) => !held.has(id));
    const sizes = await mapBounded(
      ids,
      READ_CONCURRENCY,
      async (id) => (await this.opts.store.size(id)) ?? 0,
    );
    return sizes.reduce((sum, size) => sum + size, 0);
  }

  /** Fails queued computations (answered "none") and ends the worker. */
  async close(): Promise<void> {
    this.closed = true;
    for (const queue of Object.values(this.queues)) for (const start of queue.splice(0)) start();
    await this.opts.encoder.close();
  }

  private async answer(
    target: string,
    base: string,
    files: ReadonlyMap<string, FileObject>,
    priority: DeltaPriority,
  ): Promise<CachedDelta> {
    const targetFile = files.get(target);
    const baseFile = files.get(base);
    if (!targetFile || !baseFile) throw new FlotillaError('FLT_INTERNAL', 'file objects not loaded');
    if (target === base) return NONE;
    const max = this.opts.maxFileBytes;
    if (targetFile.size > max || baseFile.size > max) return NONE;
    const { cache, metrics, log } = this.opts;
    const cached = await cache.get(target, base).catch((err: unknown) => {
      log.warn({ err, target, base }, 'delta cache unreadable; computing the delta');
      return undefined;
    });
    if (cached) {
      metrics.cacheHits.inc();
      return cached;
    }
    const key = deltaPairKey(target, base);
    let running = this.inFlight.get(key);
    if (!running) {
      running = this.queued(priority, () => this.compute(target, base, targetFile, baseFile))
        .catch((err: unknown) => {
          metrics.failures.inc();
          if (!this.closed) log.error({ err, target, base }, 'delta computation failed; answering "none"');
          return NONE;
        })
        .finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, running);
    }
    return running;
  }

  private async compute(
    target: string,
    base: string,
    targetFile: FileObject,
    baseFile: FileObject,
  ): Promise<CachedDelta> {
    const { store, cache, encoder, metrics, level, log } = this.opts;
    // A request that waited in the queue may find another one's result.
    const cached = await cache.get(target, base).catch(() => undefined);
    if (cached) {
      metrics.cacheHits.inc();
      return cached;
    }
    const started = Date.now();
    const plain = await this.plainBytes(targetFile, baseFile);
    let answer: CachedDelta = NONE;
    let why = 'nothing to fetch';
    if (plain > 0) {
      const baseContent = await readFileContent(store, baseFile);
      if (!usableAsDeltaBase(baseContent)) why = 'base starts with the zstd dictionary magic';
      else {
        const targetContent = await readFileContent(store, targetFile);
        const payload = await encoder.encode(baseContent, targetContent, level);
        if (payload.length < plain) answer = { kind: DeltaKind.zstd, payload };
        else why = 'not smaller than the chunks';
      }
    }
    metrics.computed.inc({ kind: answer.kind === DeltaKind.zstd ? 'zstd' : 'none' });
    log.debug(
      {
        target,
        base,
        kind: answer.kind,
        ...(answer.kind === DeltaKind.none && { why }),
        deltaBytes: answer.payload.length,
        plainBytes: plain,
        ms: Date.now() - started,
      },
      'delta computed',
    );
    // A delta that saves little (unrelated or random content) is not worth its disk space.
    const saving = plain > 0 ? (100 * (plain - answer.payload.length)) / plain : 100;
    const onDisk = answer.kind === DeltaKind.none || saving >= this.opts.minSavingPercent;
    await cache.put(target, base, answer, { onDisk }).catch((err: unknown) => {
      log.warn({ err, target, base }, 'delta not cached; it is computed again next time');
    });
    return answer;
  }

  /** Runs `job` when no other computation runs, device requests first. */
  private queued<T>(priority: DeltaPriority, job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queues[priority].push(() => {
        if (this.closed) {
          reject(new FlotillaError('FLT_UNAVAILABLE', 'the server is shutting down'));
          return;
        }
        this.running = true;
        job()
          .then(resolve, reject)
          .finally(() => {
            this.running = false;
            this.pump();
          });
      });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running) return;
    const next = this.queues.request.shift() ?? this.queues.background.shift();
    next?.();
  }
}
