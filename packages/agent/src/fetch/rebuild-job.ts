/**
 * Rebuilding one file from a delta against the installed release's copy on disk, verifying it,
 * and keeping it whole in the cache: the CPU-heavy part of the delta phase (zstd decoding, SHA-256
 * of the result), written as a plain function of its inputs so that it runs on a worker thread
 * (rebuild-pool.ts) while the main thread stages the release, or on the calling thread alike.
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { FlotillaError, errorSummary } from '@flotilla/protocol/errors';
import type { ErrorCode } from '@flotilla/protocol/errors';
import { decodeDelta, readExactlySync, usableAsDeltaBase, verifyFileContent } from '@flotilla/store/rebuild';
import type { FileObject, FileStamp } from '@flotilla/store/rebuild';
import { writeWholeFile } from '../cache/whole-files.js';

export interface RebuildJob {
  /** The base file in the installed release on disk, and its file object. */
  basePath: string;
  base: FileObject;
  targetId: string;
  target: FileObject;
  /** The zstd delta (`DeltaKind.zstd` payload). */
  payload: Uint8Array;
  /** Where whole files are kept (`ChunkCache.wholeFilesDir`). */
  wholeDir: string;
  /** The largest base and target of this delta phase: buffers are sized once for them. */
  maxBase: number;
  maxTarget: number;
}

export type RebuildOutcome =
  /** Rebuilt, verified and written; the caller adopts it (`ChunkCache.adoptWholeFile`). */
  | { kind: 'stored'; written: number; stamp?: FileStamp }
  /**
   * The copy on disk is missing or not the signed base: rebuild from the cache's copy instead
   * (with this payload: the job's own may have moved to the worker thread).
   */
  | { kind: 'base-changed'; payload: Uint8Array }
  /** The delta does not rebuild the target (FLT_*), or the write failed (FLT_IO, FLT_DISK_SPACE). */
  | { kind: 'error'; code: ErrorCode; message: string };

const READ_BASE = constants.O_RDONLY | constants.O_NOFOLLOW;

/**
 * Base and rebuilt content go through two buffers, grown once to the phase's largest of each kind
 * and reused from file to file: fresh memory for each file was a third of the phase's time on a
 * virtual machine (docs/updates.md "Deltas"). Only the pages used are ever touched.
 */
export class RebuildBuffers {
  base = Buffer.alloc(0);
  target = Buffer.alloc(0);

  fit(maxBase: number, maxTarget: number): void {
    if (this.base.length < maxBase) this.base = Buffer.allocUnsafeSlow(maxBase);
    if (this.target.length < maxTarget) this.target = Buffer.allocUnsafeSlow(maxTarget);
  }
}

/**
 * The base file's content as the installed release holds it on disk (read into `into`), not yet
 * verified; null if it is not there with the right size. Synchronous reads: one file at a time,
 * local disk, and several times faster than FileHandle here.
 */
export function baseOnDisk(path: string, file: FileObject, into: Buffer): Buffer | null {
  try {
    const fd = openSync(path, READ_BASE);
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
  return null;
}

/** `target` rebuilt from `base` and verified against the signed file object (FLT_* otherwise). */
export function rebuild(base: Buffer, payload: Uint8Array, target: FileObject, into: Buffer): Buffer {
  if (!usableAsDeltaBase(base))
    throw new FlotillaError('FLT_DELTA_INVALID', 'the base cannot serve as a delta dictionary');
  const content = decodeDelta(base, payload, target.size, into);
  // Content that is not the signed file stops here (FLT_HASH_MISMATCH): nothing is stored.
  verifyFileContent(target, content);
  return content;
}

export function baseIntact(content: Buffer, file: FileObject): boolean {
  try {
    verifyFileContent(file, content);
    return true;
  } catch {
    return false;
  }
}

/**
 * Rebuilds optimistically from the base on disk: the base is only hashed if the result does not
 * verify (hashing every base first cost as much as the decoding).
 */
export function runRebuildJob(job: RebuildJob, buffers: RebuildBuffers): RebuildOutcome {
  buffers.fit(job.maxBase, job.maxTarget);
  const onDisk = baseOnDisk(job.basePath, job.base, buffers.base);
  if (onDisk === null) return { kind: 'base-changed', payload: job.payload };
  let content: Buffer;
  try {
    content = rebuild(onDisk, job.payload, job.target, buffers.target);
  } catch (error) {
    // The base was intact: the delta itself is wrong (dropped by the caller).
    if (!baseIntact(onDisk, job.base)) return { kind: 'base-changed', payload: job.payload };
    return failure(error);
  }
  try {
    return { kind: 'stored', ...writeWholeFile(job.wholeDir, job.targetId, job.target, content) };
  } catch (error) {
    return failure(error);
  }
}

function failure(error: unknown): RebuildOutcome {
  return { kind: 'error', ...errorSummary(error, Infinity) };
}
