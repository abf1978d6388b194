/**
 * Reusing files of trees already on disk (the releases a device has installed) when a new tree is
 * materialized: a file whose file-object id is in an old tree is hardlinked (or copied) from there
 * instead of being rebuilt from the chunk cache, as OSTree's checkout hardlinks out of its repository.
 *
 * A candidate is opened with O_NOFOLLOW, checked by fstat on that descriptor (regular file, size,
 * mode) and its content hashed at the file object's chunk boundaries through the same descriptor.
 * A hardlink is kept only if the linked name turns out to be the inode that was verified; a copy is
 * verified after it is made. Anything unexpected makes the caller write the file from chunks instead.
 * `linkIfStampedSync` is the exception: in `link` mode, a candidate whose inode, once linked, a
 * stamp from an earlier verification vouches for (same inode, size, mode and modification time:
 * stamps.ts) is kept without being read.
 */
import fs, { constants } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { chmod, copyFile, link, realpath, unlink } from 'node:fs/promises';
import type { TreeLimits } from '../objects/limits.js';
import type { DirObject, FileObject } from '../objects/types.js';
import { verifyFileContent } from '../delta/file-content.js';
import { TreeBudget, childPath } from './context.js';
import { closeFd, fchmodFd, fstatFd, fsyncFd, lstatBig, openFd, readExactly, readExactlySync } from './fd.js';
import { mapBounded } from './pool.js';
import { scratch } from './scratch.js';
import type { StampIndex } from './stamps.js';

/** A tree already materialized at `dir` (e.g. an installed release) and its root id. */
export interface ReuseSource {
  dir: string;
  root: string;
}

/** `link`: hardlink the verified file (no copy, shares the inode); `copy`: copy it (reflink if possible). */
export type ReuseMode = 'link' | 'copy';

/** File-object id → paths of files on disk that should hold that content (unverified). */
export type ReuseIndex = Map<string, string[]>;

/** Candidates kept per file-object id: a second one helps when the first was changed on disk. */
const MAX_CANDIDATES = 2;
/** Verification reads whole chunks, this much at once (plus at most one chunk). */
const READ_BATCH_BYTES = 4 * 1024 * 1024;
// O_NONBLOCK: a FIFO planted where a file was expected must not block the open.
const OPEN_CANDIDATE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Maps every file of the `sources` trees to its path on disk, walking their directory objects
 * (`loadDir`, shared with the new tree's walk: most subtrees are the same objects). Each directory on the way must be a real directory (lstat, not a symlink), else
 * its subtree is left out; a source whose objects cannot be read or that breaks `limits` is left out
 * from there on. Never throws: reuse is an optimisation, and every candidate is verified before use.
 */
export async function buildReuseIndex(
  loadDir: DirLoader,
  sources: readonly ReuseSource[],
  limits: TreeLimits,
  concurrency: number,
): Promise<ReuseIndex> {
  const index: ReuseIndex = new Map();
  for (const source of sources) {
    try {
      await indexSource(source, index, loadDir, limits, concurrency);
    } catch {
      // Whatever was indexed before the failure stays usable; each candidate is verified anyway.
    }
  }
  return index;
}

/** Loads (and verifies) a directory object; `path` names it in errors. */
export type DirLoader = (id: string, path: string) => Promise<DirObject>;

interface Level {
  id: string;
  abs: string;
  path: string;
  depth: number;
}

async function indexSource(
  source: ReuseSource,
  index: ReuseIndex,
  load: DirLoader,
  limits: TreeLimits,
  concurrency: number,
): Promise<void> {
  // The caller names the directory (it may be a `current` symlink); below it nothing is followed.
  const top = await realpath(source.dir);
  if (!isRealDir(top)) return;
  const budget = new TreeBudget(limits);
  let level: Level[] = [{ id: source.root, abs: top, path: '', depth: 0 }];
  while (level.length > 0) {
    const loaded = await mapBounded(level, concurrency, async (dir) => {
      budget.checkDepth(dir.depth, dir.path);
      if (dir.depth > 0 && !isRealDir(dir.abs)) return undefined;
      return load(dir.id, dir.path);
    });
    const next: Level[] = [];
    level.forEach((dir, i) => {
      const object = loaded[i];
      if (object === undefined) return;
      for (const entry of object.entries) {
        const path = childPath(dir.path, entry.name);
        budget.addEntry(path);
        // Not path.join: names are checked (no '/', '.' or '..'), and normalizing each cost ~3 µs.
        const abs = `${dir.abs}/${entry.name}`;
        if (entry.kind === 'dir') next.push({ id: entry.hash!, abs, path, depth: dir.depth + 1 });
        else if (entry.kind === 'file') {
          const paths = index.get(entry.hash!);
          if (paths === undefined) index.set(entry.hash!, [abs]);
          else if (paths.length < MAX_CANDIDATES) paths.push(abs);
        }
      }
    });
    level = next;
  }
}

/** Synchronous: one quick system call, where a thread-pool round trip per directory cost ten times more. */
function isRealDir(abs: string): boolean {
  try {
    return fs.lstatSync(abs).isDirectory();
  } catch {
    return false;
  }
}

/**
 * What reusing a candidate gave: nothing (false), or the file in place, with the candidate's stat
 * from before it was verified if the linked inode still showed it afterwards (`stamp`: what may be
 * recorded as verified; none for copies).
 */
export type ReuseOutcome = false | { stamp: BigIntStats | undefined };

/**
 * Puts a verified copy of `file` at `target` (which must not exist) from the candidate `source`:
 * a hardlink of the very inode verified (`link`), or a copy verified after it is made (`copy`).
 * Returns false, leaving nothing at `target`, if the candidate does not qualify or anything fails.
 * `targetDev` is the device of the target tree (a hardlink cannot cross devices).
 */
export async function reuseCandidate(
  file: FileObject,
  source: string,
  target: string,
  mode: ReuseMode,
  targetDev: bigint,
  sync: boolean,
): Promise<ReuseOutcome> {
  let fd: number;
  try {
    fd = await openFd(source, OPEN_CANDIDATE);
  } catch {
    return false;
  }
  try {
    const info = await fstatFd(fd);
    if (!info.isFile() || info.size !== BigInt(file.size)) return false;
    if (mode === 'link') return await linkVerified(fd, info, file, source, target, targetDev, sync);
    return (await copyVerified(file, source, target, sync)) && { stamp: undefined };
  } catch {
    return false;
  } finally {
    await closeFd(fd).catch(() => undefined);
  }
}

/**
 * Candidates up to this size are hardlinked with synchronous calls: on a tree of thousands of
 * small files a round trip through libuv's thread pool costs several times the system call itself
 * (open, fstat, read, link, lstat, close: 3,230 npm files took 0.1 s this way against 0.3 s async).
 * One such file blocks the event loop for one small read at most; the caller yields between files.
 */
export const SYNC_REUSE_MAX_BYTES = 256 * 1024;

/** `reuseCandidate` in `link` mode without fsync, with synchronous calls (small files only). */
export function linkCandidateSync(
  file: FileObject,
  source: string,
  target: string,
  targetDev: bigint,
): ReuseOutcome {
  let fd: number;
  try {
    fd = fs.openSync(source, OPEN_CANDIDATE);
  } catch {
    return false;
  }
  try {
    const info = fs.fstatSync(fd, { bigint: true });
    if (!info.isFile() || info.size !== BigInt(file.size)) return false;
    if (Number(info.mode & 0o7777n) !== file.mode || info.dev !== targetDev) return false;
    const verified = scratch.withSync(file.size, (buffer) => {
      const content = buffer.subarray(0, file.size);
      if (!readExactlySync(fd, content, 0)) return false;
      verifyFileContent(file, content);
      return true;
    });
    if (!verified) return false;
    const linked = linkSameSync(source, target, info);
    return linked !== null && { stamp: unchangedSince(info, linked) };
  } catch {
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Links `source` at `target` (which must not exist) if the inode linked is one `trusted` vouches
 * for as file object `fileId`: link first, then lstat of the new name, so the inode checked is the
 * one linked, whatever the name held before. Two system calls where verifying by content takes
 * seven and a hash. Returns the lstat, or undefined with nothing left at `target`.
 */
export function linkIfStampedSync(
  trusted: StampIndex,
  fileId: string,
  source: string,
  target: string,
  targetDev: bigint,
): BigIntStats | undefined {
  const linked = linkThenStatSync(source, target);
  if (linked === null) return undefined;
  if (linked.dev === targetDev && trusted.vouchesFor(fileId, linked)) return linked;
  unlinkQuietly(target);
  return undefined;
}

/**
 * Hardlinks `source` at `target` and returns the link's lstat if it is the inode `expected`
 * describes; otherwise (the name was swapped for another file meanwhile, or link failed) removes
 * what it made and returns null.
 */
function linkSameSync(source: string, target: string, expected: BigIntStats): BigIntStats | null {
  const linked = linkThenStatSync(source, target);
  if (linked !== null && linked.dev === expected.dev && linked.ino === expected.ino) return linked;
  if (linked !== null) unlinkQuietly(target);
  return null;
}

async function linkSame(source: string, target: string, expected: BigIntStats): Promise<BigIntStats | null> {
  const linked = await linkThenStat(source, target);
  if (linked !== null && linked.dev === expected.dev && linked.ino === expected.ino) return linked;
  if (linked !== null) await unlink(target).catch(() => undefined);
  return null;
}

/** Hardlinks `source` at `target` and returns the lstat of `target`; null if link failed. */
function linkThenStatSync(source: string, target: string): BigIntStats | null {
  try {
    fs.linkSync(source, target);
  } catch {
    return null; // EXDEV, EPERM (protected hardlinks), EMLINK, a vanished source
  }
  const linked = lstatOrNull(target);
  if (linked === null) unlinkQuietly(target);
  return linked;
}

async function linkThenStat(source: string, target: string): Promise<BigIntStats | null> {
  try {
    await link(source, target);
  } catch {
    return null;
  }
  const linked = await lstatBig(target).catch(() => null);
  if (linked === null) await unlink(target).catch(() => undefined);
  return linked;
}

function unlinkQuietly(target: string): void {
  try {
    fs.unlinkSync(target);
  } catch {
    // Nothing was there or it cannot be removed: writing from chunks (O_EXCL) will say so.
  }
}

/** `before` if the inode's size and modification time did not change up to `after` (it may be stamped). */
function unchangedSince(before: BigIntStats, after: BigIntStats): BigIntStats | undefined {
  return after.size === before.size && after.mtimeNs === before.mtimeNs ? before : undefined;
}

function lstatOrNull(path: string): BigIntStats | null {
  try {
    return fs.lstatSync(path, { bigint: true });
  } catch {
    return null;
  }
}

async function linkVerified(
  fd: number,
  info: BigIntStats,
  file: FileObject,
  source: string,
  target: string,
  targetDev: bigint,
  sync: boolean,
): Promise<ReuseOutcome> {
  // Never chmod a linked inode (it is the old release's file too): the mode must already match.
  if (Number(info.mode & 0o7777n) !== file.mode || info.dev !== targetDev) return false;
  if (!(await contentMatches(fd, file))) return false;
  const linked = await linkSame(source, target, info);
  if (linked === null) return false;
  if (sync) await fsyncFd(fd);
  return { stamp: unchangedSince(info, linked) };
}

async function copyVerified(
  file: FileObject,
  source: string,
  target: string,
  sync: boolean,
): Promise<boolean> {
  try {
    // FICLONE: a reflink where the file system supports it, else an in-kernel copy.
    await copyFile(source, target, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  } catch {
    return false;
  }
  let ok = false;
  try {
    // A fresh inode of ours inside the private target tree: make it readable, then verify what
    // actually landed there (the source path may have changed since it was opened).
    await chmod(target, 0o600);
    const fd = await openFd(target, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const info = await fstatFd(fd);
      if (info.isFile() && info.size === BigInt(file.size) && (await contentMatches(fd, file))) {
        await fchmodFd(fd, file.mode);
        if (sync) await fsyncFd(fd);
        ok = true;
      }
    } finally {
      await closeFd(fd);
    }
  } catch {
    ok = false;
  }
  if (!ok) await unlink(target).catch(() => undefined);
  return ok;
}

/** Whether the first `file.size` bytes read through `fd` hash to the file object's chunks. */
export async function contentMatches(fd: number, file: FileObject): Promise<boolean> {
  let largest = 0;
  for (const chunk of file.chunks) largest = Math.max(largest, chunk.size);
  return scratch.with(Math.min(file.size, READ_BATCH_BYTES + largest), (buffer) =>
    matchesInto(fd, file, buffer),
  );
}

async function matchesInto(fd: number, file: FileObject, buffer: Buffer): Promise<boolean> {
  let position = 0;
  let first = 0;
  while (first < file.chunks.length) {
    // Whole chunks per read, at least READ_BATCH_BYTES at a time unless the file ends (one read
    // for most files).
    let last = first;
    let bytes = 0;
    do {
      bytes += file.chunks[last]!.size;
      last++;
    } while (last < file.chunks.length && bytes < READ_BATCH_BYTES);
    const view = buffer.subarray(0, bytes);
    if (!(await readExactly(fd, view, position))) return false;
    try {
      verifyFileContent({ size: bytes, chunks: file.chunks.slice(first, last) }, view);
    } catch {
      return false;
    }
    position += bytes;
    first = last;
  }
  return position === file.size;
}
