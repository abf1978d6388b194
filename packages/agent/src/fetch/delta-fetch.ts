/**
 * The delta phase of a fetch: for every file of the new release that lacks chunks and whose path
 * held another file in the release the app runs, ask the server for the new content as a zstd
 * delta against the old (`zstd --patch-from`), rebuild it, and keep it whole in the cache (staging
 * then links it into the release: nothing is written twice), or as chunks where it cannot be.
 * The old content comes from the installed release on disk (checked against its file object only
 * when the result does not verify) or, if that copy was changed, from the cache. Every rebuilt file
 * is verified by hash before it is stored; a
 * delta that is refused, cut, or does not rebuild the signed content is dropped, and its chunks are
 * left for the plain chunk fetch that follows. So deltas only ever save bytes, never trust.
 */
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { DeltaPair } from '@flotilla/protocol';
import { DeltaKind, readFileContent, splitIntoChunks } from '@flotilla/store';
import type { DeltaRecord, DirObject, FileObject } from '@flotilla/store';
import type { ChunkCache } from '../cache/chunk-cache.js';
import { WholeFiles } from '../cache/whole-files.js';
import type { DeltaFetcher, FetchRequestOptions } from './fetcher.js';
import { RebuildBuffers, baseIntact, baseOnDisk, rebuild } from './rebuild-job.js';
import type { RebuildOutcome } from './rebuild-job.js';
import type { RebuildPool } from './rebuild-pool.js';

/** The release a device runs, as a delta base: its root and where it is materialized. */
export interface DeltaBase {
  root: string;
  /** The release's directory on disk, read first (no decompression); the cache otherwise. */
  dir?: string;
}

/** A file of the new release that lacks chunks, with the path it has there. */
export interface WantedFile {
  id: string;
  file: FileObject;
  path: string;
}

export interface DeltaPhaseOptions {
  cache: ChunkCache;
  fetcher: DeltaFetcher;
  base: DeltaBase;
  /** Chunks still to fetch; the phase removes those it stores. */
  missing: Set<string>;
  /** Files at least this large are not asked for (memory: base and target are held whole). */
  maxFileBytes: number;
  request: FetchRequestOptions;
  onChunkStored: (id: string, size: number) => void;
  onDeltaFailed?: (target: string, error: unknown) => void;
  /**
   * The worker threads that rebuild files kept whole while the delta stream and staging go on
   * (a pool of none rebuilds each file on this thread as its delta arrives). The caller closes it.
   */
  pool: RebuildPool;
}

export interface DeltaPhaseResult {
  /** Files rebuilt from a delta. */
  rebuilt: number;
  /** Pairs the server answered "no delta" for, or whose delta failed. */
  declined: number;
}

/** Looks up files by path in a release's tree, loading only the directories on the way. */
class TreeIndex {
  private readonly dirs = new Map<string, Promise<DirObject | null>>();

  constructor(
    private readonly cache: ChunkCache,
    private readonly root: string,
  ) {}

  async fileAt(path: string): Promise<{ id: string; file: FileObject } | null> {
    const names = path.split('/');
    let dirId = this.root;
    for (let i = 0; i < names.length; i++) {
      const dir = await this.dir(dirId);
      const entry = dir?.entries.find((e) => e.name === names[i]);
      if (!entry?.hash) return null;
      const last = i === names.length - 1;
      if (last !== (entry.kind === 'file')) return null;
      if (last) {
        const object = await this.cache.getTreeObject(entry.hash);
        return object.type === 'file' ? { id: entry.hash, file: object } : null;
      }
      if (entry.kind !== 'dir') return null;
      dirId = entry.hash;
    }
    return null;
  }

  private dir(id: string): Promise<DirObject | null> {
    let loaded = this.dirs.get(id);
    if (!loaded) {
      loaded = this.cache
        .getTreeObject(id)
        .then((object) => (object.type === 'dir' ? object : null))
        .catch(() => null);
      this.dirs.set(id, loaded);
    }
    return loaded;
  }
}

/**
 * Rebuilds the target from the base on disk, optimistically: the base is only hashed if the
 * result does not verify (then a base changed on disk is replaced by the signed one from the
 * cache, and the delta tried again). `onDisk: false` goes to the cache's copy at once.
 */
async function rebuildTarget(
  plan: PairPlan,
  record: DeltaRecord,
  options: DeltaPhaseOptions,
  buffers: RebuildBuffers,
  onDisk: boolean,
): Promise<Buffer> {
  const base =
    onDisk && options.base.dir
      ? baseOnDisk(basePath(options.base.dir, plan), plan.base.file, buffers.base)
      : null;
  if (base !== null) {
    try {
      return rebuild(base, record.payload, plan.target.file, buffers.target);
    } catch (error) {
      // The base was intact: the delta itself is wrong (dropped by the caller).
      if (baseIntact(base, plan.base.file)) throw error;
    }
  }
  const signed = await readFileContent(options.cache, plan.base.file);
  return rebuild(signed, record.payload, plan.target.file, buffers.target);
}

function basePath(dir: string, plan: PairPlan): string {
  return join(dir, ...plan.base.path.split('/'));
}

/**
 * Files up to this size are rebuilt on this thread as their record arrives: decoding a few KB costs
 * less than the hop to a worker, and far less than starting one (about 0.1 s, more on a busy
 * device), and such files (a container image's config and manifest) are often what a runtime
 * reading the release ahead waits for first (apply/tree-files.ts).
 */
const IN_THREAD_MAX_BYTES = 64 * 1024;

/** Bounds what waits for the rebuild workers: records held in memory, and their bytes. */
const MAX_QUEUED_JOBS = 8;
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;

interface PairPlan {
  target: WantedFile;
  base: { id: string; file: FileObject; path: string };
}

/** Pairs each wanted file with the file at its path in the base release, where that makes sense. */
export async function planDeltaPairs(
  cache: ChunkCache,
  base: DeltaBase,
  wanted: readonly WantedFile[],
  maxFileBytes: number,
): Promise<PairPlan[]> {
  const index = new TreeIndex(cache, base.root);
  const plans: PairPlan[] = [];
  for (const target of wanted) {
    if (target.file.size === 0 || target.file.size > maxFileBytes) continue;
    const found = await index.fileAt(target.path).catch(() => null);
    if (!found || found.id === target.id || found.file.size > maxFileBytes) continue;
    plans.push({ target, base: { ...found, path: target.path } });
  }
  return plans;
}

export async function fetchByDeltas(
  wanted: readonly WantedFile[],
  options: DeltaPhaseOptions,
): Promise<DeltaPhaseResult> {
  const result: DeltaPhaseResult = { rebuilt: 0, declined: 0 };
  // Smallest first: the server answers in request order, and small files (a container image's
  // config and manifest) are what a runtime reading the release ahead needs before the large ones.
  const plans = (await planDeltaPairs(options.cache, options.base, wanted, options.maxFileBytes)).sort(
    (a, b) => a.target.file.size - b.target.file.size,
  );
  if (plans.length === 0) return result;
  const byKey = new Map(plans.map((p) => [`${p.target.id}:${p.base.id}`, p]));
  const maxBase = Math.max(...plans.map((p) => p.base.file.size));
  const maxTarget = Math.max(...plans.map((p) => p.target.file.size));
  // On this thread: files that cannot be kept whole, and bases changed on disk (both rare).
  const buffers = new RebuildBuffers();
  const { pool } = options;
  const queued = new Set<Promise<void>>();
  let queuedBytes = 0;
  // A local failure (this device's disk) met by a rebuild: it stops the phase (set from callbacks).
  const local: { failure: FlotillaError | null } = { failure: null };
  const declined = (target: string, error: unknown) => {
    result.declined += 1;
    options.onDeltaFailed?.(target, error);
  };
  /** Counts a rebuilt file, or a failure: a local one stops the phase, others decline the delta. */
  const settle = async (plan: PairPlan, rebuildIt: () => Promise<void>) => {
    try {
      await rebuildIt();
      result.rebuilt += 1;
    } catch (error) {
      if (isLocalFailure(error)) local.failure ??= error;
      else declined(plan.target.id, error);
    }
  };
  const onThread = (plan: PairPlan, record: DeltaRecord, onDisk: boolean) => () =>
    storeRebuilt(plan, record, options, buffers, onDisk);
  // The record's payload moves to the worker: its length is kept for the queue's accounting.
  const inWorker = (plan: PairPlan, record: DeltaRecord) => async () => {
    const outcome = await pool.run({
      basePath: basePath(options.base.dir!, plan),
      base: plan.base.file,
      targetId: plan.target.id,
      target: plan.target.file,
      payload: record.payload,
      wholeDir: options.cache.wholeFilesDir,
      maxBase,
      maxTarget,
    });
    if (outcome.kind === 'base-changed')
      return onThread(plan, { ...record, payload: asBuffer(outcome.payload) }, false)();
    if (outcome.kind === 'error') throw new FlotillaError(outcome.code, outcome.message);
    adopt(plan, outcome, options);
  };
  const apply = async (record: DeltaRecord) => {
    if (local.failure !== null) throw local.failure;
    const plan = byKey.get(`${record.target}:${record.base}`);
    if (!plan) return;
    if (record.kind === DeltaKind.none) {
      result.declined += 1;
      return;
    }
    if (
      !WholeFiles.canHold(plan.target.file) ||
      options.base.dir === undefined ||
      plan.target.file.size <= IN_THREAD_MAX_BYTES
    )
      return settle(plan, onThread(plan, record, true));
    const bytes = record.payload.length;
    const job = settle(plan, inWorker(plan, record)).finally(() => {
      queued.delete(job);
      queuedBytes -= bytes;
    });
    queued.add(job);
    queuedBytes += bytes;
    while (queued.size > MAX_QUEUED_JOBS || (queuedBytes > MAX_QUEUED_BYTES && queued.size > 1))
      await Promise.race(queued);
  };
  try {
    await options.fetcher.fetchDeltas(pairs(plans), apply, options.request);
  } catch (error) {
    if (options.request.signal?.aborted || isLocalFailure(error)) throw error;
    // A cut or refused delta stream: what arrived is stored; the rest goes by chunks.
    options.onDeltaFailed?.('*', error);
  } finally {
    await Promise.all(queued);
  }
  if (local.failure !== null) throw local.failure;
  return result;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function pairs(plans: readonly PairPlan[]): DeltaPair[] {
  return plans.map((p) => ({ target: p.target.id, base: p.base.id }));
}

/** Takes in a file a worker rebuilt and kept whole: its chunks are no longer missing. */
function adopt(
  plan: PairPlan,
  outcome: Extract<RebuildOutcome, { kind: 'stored' }>,
  options: DeltaPhaseOptions,
) {
  const file = plan.target.file;
  options.cache.adoptWholeFile(plan.target.id, file, outcome);
  for (const chunk of file.chunks) {
    if (!options.missing.delete(chunk.id)) continue;
    options.onChunkStored(chunk.id, chunk.size);
  }
}

/** A failure of this device (its disk), which a plain fetch would meet too: not a reason to fall back. */
function isLocalFailure(error: unknown): error is FlotillaError {
  return error instanceof FlotillaError && (error.code === 'FLT_IO' || error.code === 'FLT_DISK_SPACE');
}

async function storeRebuilt(
  plan: PairPlan,
  record: DeltaRecord,
  options: DeltaPhaseOptions,
  buffers: RebuildBuffers,
  onDisk: boolean,
): Promise<void> {
  const file = plan.target.file;
  buffers.fit(plan.base.file.size, file.size);
  const content = await rebuildTarget(plan, record, options, buffers, onDisk);
  const whole = WholeFiles.canHold(file);
  if (whole) options.cache.putWholeFile(plan.target.id, file, content);
  for (const { chunk, bytes } of splitIntoChunks(file.chunks, content)) {
    if (!options.missing.has(chunk.id)) continue;
    if (!whole) await options.cache.putChunk(chunk.id, bytes);
    options.missing.delete(chunk.id);
    options.onChunkStored(chunk.id, chunk.size);
  }
}
