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
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { DeltaPair } from '@flotilla/protocol';
import {
  DeltaKind,
  decodeDelta,
  readExactlySync,
  readFileContent,
  splitIntoChunks,
  usableAsDeltaBase,
  verifyFileContent,
} from '@flotilla/store';
import type { DeltaRecord, DirObject, FileObject } from '@flotilla/store';
import type { ChunkCache } from '../cache/chunk-cache.js';
import { WholeFiles } from '../cache/whole-files.js';
import type { DeltaFetcher, FetchRequestOptions } from './fetcher.js';

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

const READ_BASE = constants.O_RDONLY | constants.O_NOFOLLOW;

/**
 * The base file's content as the installed release holds it on disk (read into `into`), not yet
 * verified; null if it is not there with the right size. Synchronous reads: one file at a time,
 * local disk, and several times faster than FileHandle here.
 */
function baseOnDisk(options: DeltaPhaseOptions, path: string, file: FileObject, into: Buffer): Buffer | null {
  if (options.base.dir) {
    try {
      const fd = openSync(join(options.base.dir, ...path.split('/')), READ_BASE);
      try {
        const info = fstatSync(fd);
        if (info.isFile() && info.size === file.size) {
          const content = into.subarray(0, file.size);
          return readExactlySync(fd, content, 0) ? content : null;
        }
      } finally {
        closeSync(fd);
      }
    } catch {
      // missing or unreadable on disk: the cache holds every chunk of an installed release
    }
  }
  return null;
}

/** `content` rebuilt from `base` and verified against the signed target (FLT_* otherwise). */
function rebuild(base: Buffer, record: DeltaRecord, file: FileObject, into: Buffer): Buffer {
  if (!usableAsDeltaBase(base))
    throw new FlotillaError('FLT_DELTA_INVALID', 'the base cannot serve as a delta dictionary');
  const content = decodeDelta(base, record.payload, file.size, into);
  // Content that is not the signed file stops here (FLT_HASH_MISMATCH): nothing is stored.
  verifyFileContent(file, content);
  return content;
}

/**
 * Rebuilds the target from the base on disk, optimistically: the base is only hashed if the
 * result does not verify (then a base changed on disk is replaced by the signed one from the
 * cache, and the delta tried again). Hashing every base first cost as much as the decoding.
 */
async function rebuildTarget(
  plan: PairPlan,
  record: DeltaRecord,
  options: DeltaPhaseOptions,
  buffers: RebuildBuffers,
): Promise<Buffer> {
  const onDisk = baseOnDisk(options, plan.base.path, plan.base.file, buffers.base);
  if (onDisk !== null) {
    try {
      return rebuild(onDisk, record, plan.target.file, buffers.target);
    } catch (error) {
      // The base was intact: the delta itself is wrong (dropped by the caller).
      if (baseIntact(onDisk, plan.base.file)) throw error;
    }
  }
  const signed = await readFileContent(options.cache, plan.base.file);
  return rebuild(signed, record, plan.target.file, buffers.target);
}

function baseIntact(content: Buffer, file: FileObject): boolean {
  try {
    verifyFileContent(file, content);
    return true;
  } catch {
    return false;
  }
}

interface RebuildBuffers {
  base: Buffer;
  target: Buffer;
}

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
  const plans = await planDeltaPairs(options.cache, options.base, wanted, options.maxFileBytes);
  if (plans.length === 0) return result;
  const byKey = new Map(plans.map((p) => [`${p.target.id}:${p.base.id}`, p]));
  // Base and rebuilt content go through two buffers, each as large as the largest of its kind in
  // this phase, reused from file to file: fresh memory for each file was a third of the phase's
  // time on a virtual machine (docs/updates.md "Staging"). Only the pages used are ever touched.
  const buffers: RebuildBuffers = {
    base: Buffer.allocUnsafeSlow(Math.max(...plans.map((p) => p.base.file.size))),
    target: Buffer.allocUnsafeSlow(Math.max(...plans.map((p) => p.target.file.size))),
  };
  const pairs: DeltaPair[] = plans.map((p) => ({ target: p.target.id, base: p.base.id }));
  const apply = async (record: DeltaRecord) => {
    const plan = byKey.get(`${record.target}:${record.base}`);
    if (!plan) return;
    if (record.kind === DeltaKind.none) {
      result.declined += 1;
      return;
    }
    try {
      await storeRebuilt(plan, record, options, buffers);
      result.rebuilt += 1;
    } catch (error) {
      if (isLocalFailure(error)) throw error;
      result.declined += 1;
      options.onDeltaFailed?.(plan.target.id, error);
    }
  };
  try {
    await options.fetcher.fetchDeltas(pairs, apply, options.request);
  } catch (error) {
    if (options.request.signal?.aborted || isLocalFailure(error)) throw error;
    // A cut or refused delta stream: what arrived is stored; the rest goes by chunks.
    options.onDeltaFailed?.('*', error);
  }
  return result;
}

/** A failure of this device (its disk), which a plain fetch would meet too: not a reason to fall back. */
function isLocalFailure(error: unknown): boolean {
  return error instanceof FlotillaError && (error.code === 'FLT_IO' || error.code === 'FLT_DISK_SPACE');
}

async function storeRebuilt(
  plan: PairPlan,
  record: DeltaRecord,
  options: DeltaPhaseOptions,
  buffers: RebuildBuffers,
): Promise<void> {
  const file = plan.target.file;
  const content = await rebuildTarget(plan, record, options, buffers);
  const whole = WholeFiles.canHold(file);
  if (whole) options.cache.putWholeFile(plan.target.id, file, content);
  for (const { chunk, bytes } of splitIntoChunks(file.chunks, content)) {
    if (!options.missing.has(chunk.id)) continue;
    if (!whole) await options.cache.putChunk(chunk.id, bytes);
    options.missing.delete(chunk.id);
    options.onChunkStored(chunk.id, chunk.size);
  }
}
