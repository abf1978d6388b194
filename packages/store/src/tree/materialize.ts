import { constants, mkdirSync, symlinkSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { chmod, copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { concurrencyLimit, timeSlices } from '@flotilla/node-kit';
import type { Limit } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import { syncFilesystem } from '../fs-sync.js';
import { asIoError } from '../io-error.js';
import { contentId } from '../objects/ids.js';
import { resolveLimits } from '../objects/limits.js';
import type { TreeLimits } from '../objects/limits.js';
import { checkSymlinkWithinTree } from '../objects/paths.js';
import type { DirObject, FileObject } from '../objects/types.js';
import { checkMode } from '../objects/validate.js';
import type { StoreReader } from '../store-api.js';
import { TreeBudget, childPath, loadDir, loadFile, withPath } from './context.js';
import {
  closeFd,
  fchmodFd,
  fstatFd,
  fsyncFd,
  ftruncateFd,
  futimesFd,
  lstatBig,
  openFd,
  readExactly,
  writeAll,
  writeAllAt,
} from './fd.js';
import { mapBounded, runBounded } from './pool.js';
import {
  SYNC_REUSE_MAX_BYTES,
  buildReuseIndex,
  linkCandidateSync,
  linkIfStampedSync,
  reuseCandidate,
} from './reuse.js';
import type { DirLoader, ReuseIndex, ReuseMode, ReuseSource } from './reuse.js';
import { backdatedSeconds, racyAfterNs, stampOf } from './stamps.js';
import type { FileStamp, StampIndex } from './stamps.js';

/**
 * How the written tree is made durable before materialize returns:
 * - `file`: fsync every file as it is written and every directory once complete (slow on trees of
 *   many small files, a journal commit each);
 * - `filesystem`: no fsync per file, one syncfs(2) of the target's file system at the end (as
 *   OSTree does after a checkout); where that is unavailable, every file and directory written is
 *   fsynced afterwards;
 * - `none`: nothing is synced (tests, or a caller that syncs by itself).
 */
export type Durability = 'file' | 'filesystem' | 'none';

export interface MaterializeOptions {
  limits?: Partial<TreeLimits>;
  /** Default `'file'` (the agent switches releases right after). */
  durability?: Durability;
  /** Mode of the target directory itself (default 0o755). */
  rootMode?: number;
  /**
   * Trees already materialized on disk (the releases the device has installed), with their root
   * ids. A file of the new tree found in one of them, verified against its file object, is taken
   * from there (see `reuseMode`) instead of being rebuilt from chunks; any doubt about a candidate
   * (changed, replaced by a symlink, different mode, another device…) falls back to chunks.
   */
  reuse?: readonly ReuseSource[];
  /**
   * `link` (default): hardlink the verified file, sharing its inode with the old tree, as OSTree's
   * checkout does; a file modified in place later changes both trees. `copy`: copy it (a reflink
   * where the file system supports it), so the trees stay independent.
   */
  reuseMode?: ReuseMode;
  /** Files and directories processed at once (default 8, 1–64). */
  concurrency?: number;
  /**
   * Where a file with the given file-object id may be found whole on disk, outside any tree (the
   * agent keeps files rebuilt from deltas so: docs/updates.md "Staging"). Tried before `reuse`,
   * verified and linked or copied (`reuseMode`) the same way, falling back like them.
   */
  wholeFiles?: (fileId: string) => string | undefined;
  /**
   * Stamps of inodes verified before (by an earlier materialize's `stamps`): in `link` mode a
   * candidate they vouch for is linked without being read (stamps.ts). Ignored with `file` durability.
   */
  trusted?: StampIndex;
  /** Return `stamps` of the files linked into the new tree, for the next materialize's `trusted`. */
  recordStamps?: boolean;
  /**
   * Contents still arriving (an update whose download is finishing while staging begins): the
   * directories, symlinks and files that `trusted` vouches for are put in place first, then this
   * is awaited before any other file is written or linked. It resolves to stamps of files that
   * arrived meanwhile (added to `trusted`); if it rejects, materialize removes what it made and
   * throws that error. Every file object of the tree must already be readable.
   */
  pending?: Promise<Iterable<FileStamp> | undefined>;
}

export interface MaterializeStats {
  files: number;
  dirs: number;
  symlinks: number;
  /** Bytes of all files of the tree. */
  bytes: number;
  /** Files taken from a `reuse` tree (linked or copied) instead of being written from chunks. */
  reused: number;
  /** Files that had a reuse candidate, none of which qualified, so they were written from chunks. */
  reuseFallbacks: number;
  /** Bytes written from chunks (files not reused). */
  bytesWritten: number;
  /** Reused files linked on the word of a stamp (`trusted`), without being read. */
  trustedByStamp: number;
  /**
   * Files written as a copy of the file at their path in a `reuse` tree, patched with the chunks
   * that differ (every byte verified against the file object), and the bytes those chunks hold.
   */
  patched: number;
  bytesPatched: number;
  /**
   * Bytes of such copies read back and verified: none where a stamp (`trusted`) vouches for the
   * file copied, whose chunks are then trusted as a link to it would be.
   */
  bytesReadBack: number;
  /**
   * With `recordStamps`: a stamp for each file linked into the tree whose modification time is not
   * racy, and for each file written here (its modification time set a few seconds before staging
   * began, so that it is not racy either): stamps.ts. Copies are not stamped.
   */
  stamps?: FileStamp[];
}

const CREATE_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const OPEN_FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const PATCH_FILE = constants.O_RDWR | constants.O_NOFOLLOW;
/**
 * A file written from chunks is first copied from the file at its path in a `reuse` tree, then
 * patched, when it is at least this large and that file holds at least half of its bytes at the
 * same offsets (patchFromBase).
 */
const PATCH_MIN_BYTES = 1024 * 1024;
/** Copied ranges are read back and verified in pieces of about this size. */
const VERIFY_PIECE_BYTES = 1024 * 1024;
const DEFAULT_CONCURRENCY = 8;
const MAX_CONCURRENCY = 64;
/** Synchronous reuse steps give the event loop a turn at least this often (ms). */
const YIELD_EVERY_MS = 5;

interface FileJob {
  id: string;
  abs: string;
  path: string;
  /**
   * The file object, loading; not loaded (undefined) for a file that stamps name, which is first
   * tried by stamp alone (`linkByStamp`) and loaded only if that fails.
   */
  object: Promise<FileObject> | undefined;
  /** Size and mode: from a stamp of the file object until the object itself is loaded. */
  size: number;
  mode: number;
  /** Set once written: whether the inode is ours (written or copied), not a link to an old tree's. */
  owned?: boolean;
  /** Its stamps were tried (and did not vouch for any candidate). */
  stampTried?: true;
}

interface DirJob {
  id: string;
  abs: string;
  path: string;
  depth: number;
}

interface DirMode {
  abs: string;
  path: string;
  mode: number;
  depth: number;
  /** Created 0700; its mode is applied once its files are in. */
  pending: boolean;
}

class Materializer {
  readonly stats: MaterializeStats = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    bytes: 0,
    reused: 0,
    reuseFallbacks: 0,
    bytesWritten: 0,
    trustedByStamp: 0,
    patched: 0,
    bytesPatched: 0,
    bytesReadBack: 0,
  };
  readonly files: FileJob[] = [];
  // Directory modes are applied last, deepest first, so read-only directories can still be filled.
  readonly dirModes: DirMode[] = [];
  private readonly umask: number;
  /** The stamps, where files may be linked on their word (`link` mode, no fsync per file). */
  private readonly linkTrusted: StampIndex | undefined;
  private readonly budget: TreeBudget;
  private readonly syncEach: boolean;
  /** Lets the event loop turn between synchronous reuse steps (node-kit's `timeSlices`). */
  private readonly pause = timeSlices(YIELD_EVERY_MS);
  private readonly fileLoads = new Map<string, Promise<FileObject>>();
  private readonly fileLimiter: Limit;
  private readonly dirObjects = new Map<string, Promise<DirObject>>();
  /** Directory objects, each loaded once for this tree and the reuse trees (which share most). */
  readonly loadDir: DirLoader = (id, path) => {
    let dir = this.dirObjects.get(id);
    if (dir === undefined) {
      dir = loadDir(this.reader, id, path, this.limits);
      // Marked handled: a rejection is seen by whoever awaits it, not reported as unhandled.
      dir.catch(() => undefined);
      this.dirObjects.set(id, dir);
    }
    return dir;
  };

  constructor(
    private readonly reader: StoreReader,
    private readonly limits: TreeLimits,
    private readonly durability: Durability,
    private readonly concurrency: number,
    private readonly reuseMode: ReuseMode,
    private readonly wholeFiles: ((fileId: string) => string | undefined) | undefined,
    trusted: StampIndex | undefined,
    recordStamps: boolean,
    private readonly reuseSources: readonly ReuseSource[] = [],
  ) {
    if (recordStamps) this.stats.stamps = [];
    this.umask = currentUmask();
    this.linkTrusted = reuseMode === 'link' && durability !== 'file' ? trusted : undefined;
    this.budget = new TreeBudget(limits);
    this.syncEach = durability === 'file';
    this.fileLimiter = concurrencyLimit(concurrency);
  }

  /**
   * Creates every directory and symlink, level by level (directory objects of a level are loaded
   * concurrently), and lists the files. Checks run in tree order before anything of a level is
   * created, so the same tree always fails at the same place.
   */
  async dirs(root: string, targetDir: string): Promise<void> {
    let level: DirJob[] = [{ id: root, abs: targetDir, path: '', depth: 0 }];
    while (level.length > 0) {
      const objects = await mapBounded(level, this.concurrency, (dir) => {
        this.budget.checkDepth(dir.depth, dir.path);
        // A failure cached by the reuse walk is retried here, to be reported with this tree's path.
        return this.loadDir(dir.id, dir.path).catch(() =>
          loadDir(this.reader, dir.id, dir.path, this.limits),
        );
      });
      const next: DirJob[] = [];
      const create: { path: string; run: () => void }[] = [];
      level.forEach((dir, i) => {
        for (const entry of objects[i]!.entries) {
          const path = childPath(dir.path, entry.name);
          // Not path.join: names are checked (no '/', '.' or '..'), and normalizing each cost ~3 µs.
          const abs = `${dir.abs}/${entry.name}`;
          try {
            this.budget.addEntry(path);
            if (entry.kind === 'symlink') {
              checkSymlinkWithinTree(entry.target!, dir.depth, path);
              create.push({ path, run: () => symlinkSync(entry.target!, abs) });
              this.stats.symlinks++;
            } else if (entry.kind === 'file') {
              const id = entry.hash!;
              const stamp = this.linkTrusted?.anyStampOf(id);
              this.files.push(
                stamp !== undefined
                  ? { id, abs, path, object: undefined, size: stamp.size, mode: stamp.mode }
                  : { id, abs, path, object: this.loadFile(id, path), size: 0, mode: 0 },
              );
            } else {
              const direct = this.createsWithMode(entry.mode!);
              create.push({ path, run: () => mkdirSync(abs, { mode: direct ? entry.mode! : 0o700 }) });
              this.stats.dirs++;
              next.push({ id: entry.hash!, abs, path, depth: dir.depth + 1 });
              this.dirModes.push({ abs, path, mode: entry.mode!, depth: dir.depth + 1, pending: !direct });
            }
          } catch (error) {
            throw withPath(error, path);
          }
        }
      });
      // Synchronous calls: a directory or symlink is one quick system call, and a thread-pool
      // round trip per entry cost several times that on trees of hundreds of directories.
      for (const { path, run } of create) {
        try {
          await this.yieldSometimes(run);
        } catch (error) {
          throw withPath(error, path);
        }
      }
      level = next;
    }
  }

  /**
   * File objects are loaded as the walk finds them (each distinct one once, `concurrency` at a
   * time), so their reads overlap the creation of the directories.
   */
  private loadFile(id: string, path: string): Promise<FileObject> {
    let load = this.fileLoads.get(id);
    if (load === undefined) {
      load = this.fileLimiter(() => loadFile(this.reader, id, path, this.limits));
      load.catch(() => undefined); // awaited in tree order by fileObjects(); never unhandled
      this.fileLoads.set(id, load);
    }
    return load;
  }

  /**
   * Waits for every file's object in tree order (files left to their stamps have none yet), so the
   * first failure in tree order is the one reported; then charges the sizes in that order.
   */
  async fileObjects(): Promise<void> {
    for (const job of this.files) {
      try {
        const object = await job.object;
        if (object !== undefined) {
          job.size = object.size;
          job.mode = object.mode;
        }
      } catch (error) {
        throw withPath(error, job.path);
      }
    }
    this.files.forEach((job) => this.budget.addBytes(job.size, job.path));
  }

  /** Waits for the file object loads still running (before the partial tree is removed). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.fileLoads.values());
  }

  private candidatesOf(reuse: ReuseIndex | undefined, id: string): string[] | undefined {
    const whole = this.wholeFiles?.(id);
    const found = reuse?.get(id);
    return whole === undefined ? found : [whole, ...(found ?? [])];
  }

  /**
   * In one synchronous pass (yielding now and then), every file left to its stamps: a link and an
   * lstat each, no promise per file. Returns the indexes of the other files (what its stamps did
   * not vouch for is loaded and goes with them), for `writeFiles`.
   */
  async linkStamped(reuse: ReuseIndex | undefined, targetDev: bigint): Promise<number[]> {
    // Files modified from here on (minus the margin) are not stamped: their times are racy.
    const racyAfter = racyAfterNs(Date.now());
    const rest: number[] = [];
    for (let i = 0; i < this.files.length; i++) {
      const job = this.files[i]!;
      if (job.object !== undefined) {
        rest.push(i);
        continue;
      }
      const candidates = this.candidatesOf(reuse, job.id);
      const linked = await this.yieldSometimes(() => this.linkByStamp(job, candidates, targetDev));
      if (linked !== undefined) {
        this.linkedByStamp(job, linked, racyAfter);
        continue;
      }
      job.object = this.loadFile(job.id, job.path);
      job.stampTried = true;
      rest.push(i);
    }
    return rest;
  }

  /** Stamps that arrived after the tree was listed (`pending`), for `writeFiles`. */
  trust(stamps: Iterable<FileStamp>): void {
    this.linkTrusted?.add(stamps);
  }

  private linkedByStamp(job: FileJob, linked: BigIntStats, racyAfter: bigint): void {
    this.stats.trustedByStamp++;
    this.counted(job, true);
    const stamp = stampOf(job.id, linked, racyAfter);
    if (stamp !== undefined) this.stats.stamps?.push(stamp);
  }

  /** Writes (or links, or copies) the files `linkStamped` left, `concurrency` at a time. */
  async writeFiles(rest: readonly number[], reuse: ReuseIndex | undefined, targetDev: bigint): Promise<void> {
    const now = Date.now();
    const racyAfter = racyAfterNs(now);
    const backdated = backdatedSeconds(now);
    await runBounded(rest.length, this.concurrency, async (n) => {
      const i = rest[n]!;
      const job = this.files[i]!;
      try {
        const file = await job.object!;
        const candidates = this.candidatesOf(reuse, job.id);
        // A file that arrived while staging waited (`pending`) may be stamped by now.
        if (job.stampTried === undefined && this.linkTrusted?.anyStampOf(job.id) !== undefined) {
          const linked = this.linkByStamp(job, candidates, targetDev);
          if (linked !== undefined) return this.linkedByStamp(job, linked, racyAfter);
        }
        if (candidates !== undefined) {
          const small = this.reuseMode === 'link' && !this.syncEach && file.size <= SYNC_REUSE_MAX_BYTES;
          for (const candidate of candidates) {
            const reused = small
              ? await this.yieldSometimes(() => linkCandidateSync(file, candidate, job.abs, targetDev))
              : await reuseCandidate(file, candidate, job.abs, this.reuseMode, targetDev, this.syncEach);
            if (reused) {
              this.counted(job, this.reuseMode === 'link');
              const stamp = reused.stamp && stampOf(job.id, reused.stamp, racyAfter);
              if (stamp !== undefined) this.stats.stamps?.push(stamp);
              return;
            }
          }
          this.stats.reuseFallbacks++;
        }
        const written =
          (await this.patchFromBase(file, job.path, job.abs, backdated)) ??
          (await this.writeFromChunks(file, job.abs, backdated));
        const stamp = written && stampOf(job.id, written, racyAfter);
        if (stamp) this.stats.stamps?.push(stamp);
        job.owned = true;
      } catch (error) {
        throw withPath(error, job.path);
      }
    });
  }

  /** Counts a file taken from a candidate (`linked`: a hardlink, not a copy of our own). */
  private counted(job: FileJob, linked: boolean): void {
    job.owned = !linked;
    this.stats.reused++;
    this.stats.files++;
    this.stats.bytes += job.size;
  }

  /** Links the first candidate whose inode, once linked, a stamp vouches for; its lstat, or undefined. */
  private linkByStamp(
    job: FileJob,
    candidates: string[] | undefined,
    targetDev: bigint,
  ): BigIntStats | undefined {
    for (const candidate of candidates ?? []) {
      const linked = linkIfStampedSync(this.linkTrusted!, job.id, candidate, job.abs, targetDev);
      if (linked !== undefined) return linked;
    }
    return undefined;
  }

  /** Runs a synchronous step, first letting the event loop run if the last such pause was long ago. */
  private async yieldSometimes<T>(step: () => T): Promise<T> {
    await this.pause();
    return step();
  }

  /**
   * The file at `path` in the first `reuse` tree that has one there (its file object and where it
   * is on disk), for patchFromBase; undefined when none does.
   */
  private async baseAt(path: string): Promise<{ abs: string; id: string; file: FileObject } | undefined> {
    const names = path.split('/');
    for (const source of this.reuseSources) {
      let id = source.root;
      let at = '';
      let found: string | undefined;
      try {
        for (const [i, name] of names.entries()) {
          const dir = await this.loadDir(id, at);
          const entry = dir.entries.find((e) => e.name === name);
          const last = i === names.length - 1;
          if (entry?.hash === undefined || entry.kind !== (last ? 'file' : 'dir')) break;
          at = childPath(at, name);
          if (last) found = entry.hash;
          else id = entry.hash;
        }
        if (found === undefined) continue;
        const file = await this.loadFile(found, path);
        return { abs: `${source.dir}/${path}`, id: found, file };
      } catch {
        continue; // an unreadable tree: not a base
      }
    }
    return undefined;
  }

  /**
   * Writes `file` as a copy of the file at its path in a `reuse` tree (an in-kernel copy, a reflink
   * where the file system has them), then patches it: every chunk that tree's file object puts at
   * the same offset is read back from the copy and verified against its hash, every other chunk
   * (and any that fails) is written from the cache over it, verified as writeFromChunks does, and
   * the file is cut to its size. Where a stamp vouches for the installed file before and after the
   * copy (unchanged since it was verified or written), the copied chunks are trusted as a link to
   * it would be, and not read back: the read-back and its hashing were most of a 64 MiB layer's
   * stage, on the event loop beside the engine extracting the same layer (bench/README.md
   * "containers"). So a large file of which a few chunks changed (a container image
   * layer) is not decompressed and rewritten whole; a base changed on disk costs only the chunks
   * it spoilt. Undefined (nothing written) when there is no such base, it holds less than half of
   * the file at the same offsets, is not a regular file of its file object's size, or the copy fails:
   * the caller writes the file from chunks.
   */
  private async patchFromBase(
    file: FileObject,
    path: string,
    absPath: string,
    backdated: number,
  ): Promise<BigIntStats | undefined | false> {
    if (file.size < PATCH_MIN_BYTES || this.reuseSources.length === 0) return undefined;
    const base = await this.baseAt(path);
    if (base === undefined) return undefined;
    const old = new Map<number, string>();
    let at = 0;
    for (const c of base.file.chunks) {
      old.set(at, c.id);
      at += c.size;
    }
    let sameBytes = 0;
    at = 0;
    const same = file.chunks.map((c) => {
      const hit = old.get(at) === c.id;
      if (hit) sameBytes += c.size;
      at += c.size;
      return hit;
    });
    if (sameBytes * 2 < file.size) return undefined;
    // A regular file of the old file object's size only: never a FIFO (the copy would block), a
    // device, or a file grown or cut since (written from chunks instead).
    const found = await lstatBig(base.abs).catch(() => undefined);
    if (found === undefined || !found.isFile() || found.size !== BigInt(base.file.size)) return undefined;
    try {
      // COPYFILE_EXCL: never over a file (or symlink) already there, as O_EXCL for writeFromChunks.
      await copyFile(base.abs, absPath, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    } catch {
      await rm(absPath, { force: true }).catch(() => undefined);
      return undefined;
    }
    const after = this.linkTrusted && (await lstatBig(base.abs).catch(() => undefined));
    const trustedCopy =
      after !== undefined &&
      after.ino === found.ino &&
      this.linkTrusted!.vouchesFor(base.id, found) &&
      this.linkTrusted!.vouchesFor(base.id, after);
    let written: BigIntStats | undefined;
    await chmod(absPath, 0o600);
    const fd = await openFd(absPath, PATCH_FILE);
    try {
      let patchedBytes = 0;
      const patch = async (index: number, offset: number): Promise<void> => {
        const chunk = file.chunks[index]!;
        const bytes = await this.reader.getChunk(chunk.id);
        if (bytes.length !== chunk.size || contentId(bytes) !== chunk.id) {
          throw new FlotillaError('FLT_HASH_MISMATCH', `chunk ${chunk.id} does not match its hash or size`, {
            details: { chunk: chunk.id, size: chunk.size, got: bytes.length },
          });
        }
        await writeAllAt(fd, bytes, offset);
        patchedBytes += chunk.size;
      };
      let offset = 0;
      let i = 0;
      while (i < file.chunks.length) {
        if (!same[i]) {
          await patch(i, offset);
          offset += file.chunks[i]!.size;
          i++;
          continue;
        }
        if (trustedCopy) {
          offset += file.chunks[i]!.size;
          i++;
          continue;
        }
        // A run of same-offset chunks, read back from the copy in one piece and verified chunk by chunk.
        let end = i;
        let runBytes = 0;
        while (end < file.chunks.length && same[end] && runBytes < VERIFY_PIECE_BYTES)
          runBytes += file.chunks[end++]!.size;
        const piece = Buffer.allocUnsafe(runBytes);
        const complete = await readExactly(fd, piece, offset);
        this.stats.bytesReadBack += runBytes;
        let within = 0;
        for (let k = i; k < end; k++) {
          const size = file.chunks[k]!.size;
          const ok = complete && contentId(piece.subarray(within, within + size)) === file.chunks[k]!.id;
          if (!ok) await patch(k, offset + within);
          within += size;
        }
        offset += runBytes;
        i = end;
      }
      await ftruncateFd(fd, file.size);
      await fchmodFd(fd, file.mode);
      if (this.stats.stamps !== undefined) {
        await futimesFd(fd, backdated, backdated);
        written = await fstatFd(fd);
      }
      if (this.syncEach) await fsyncFd(fd);
      this.stats.patched++;
      this.stats.bytesPatched += patchedBytes;
      this.stats.bytesWritten += patchedBytes;
    } finally {
      await closeFd(fd);
    }
    this.stats.files++;
    this.stats.bytes += file.size;
    return written ?? false;
  }

  /** Writes `file` at `absPath`; with stamps recorded, backdates it and returns its fstat. */
  private async writeFromChunks(
    file: FileObject,
    absPath: string,
    backdated: number,
  ): Promise<BigIntStats | undefined> {
    let written: BigIntStats | undefined;
    // O_EXCL | O_NOFOLLOW: never write through a symlink or into a file that is already there.
    const fd = await openFd(absPath, CREATE_FILE, 0o600);
    try {
      for (const chunk of file.chunks) {
        const bytes = await this.reader.getChunk(chunk.id);
        if (bytes.length !== chunk.size || contentId(bytes) !== chunk.id) {
          throw new FlotillaError('FLT_HASH_MISMATCH', `chunk ${chunk.id} does not match its hash or size`, {
            details: { chunk: chunk.id, size: chunk.size, got: bytes.length },
          });
        }
        await writeAll(fd, bytes);
      }
      await fchmodFd(fd, file.mode);
      if (this.stats.stamps !== undefined) {
        await futimesFd(fd, backdated, backdated);
        written = await fstatFd(fd);
      }
      if (this.syncEach) await fsyncFd(fd);
    } finally {
      await closeFd(fd);
    }
    this.stats.files++;
    this.stats.bytes += file.size;
    this.stats.bytesWritten += file.size;
    return written;
  }

  /** Applies directory modes deepest level first (fsyncing each directory under `file`). */
  /**
   * Whether a directory can be created with its final mode at once, sparing an open, fchmod and
   * close after its files are in (most trees: 0755 everywhere): its owner can write into it, mkdir's
   * umask leaves the mode as it is, and no fsync per directory is due. Others cannot reach it
   * meanwhile: the target root stays 0700 until the end.
   */
  private createsWithMode(mode: number): boolean {
    return !this.syncEach && (mode & ~0o777) === 0 && (mode & 0o700) === 0o700 && (mode & this.umask) === 0;
  }

  async applyDirModes(): Promise<void> {
    const byDepth = new Map<number, DirMode[]>();
    for (const dir of this.dirModes) {
      if (!dir.pending) continue; // created with its mode (never with a fsync per directory due)
      const level = byDepth.get(dir.depth);
      if (level === undefined) byDepth.set(dir.depth, [dir]);
      else level.push(dir);
    }
    for (const depth of [...byDepth.keys()].sort((a, b) => b - a)) {
      const level = byDepth.get(depth)!;
      await runBounded(level.length, this.concurrency, async (i) => {
        const dir = level[i]!;
        await applyMode(dir.abs, dir.mode, this.syncEach).catch((error: unknown) => {
          throw withPath(error, dir.path);
        });
      });
    }
  }

  /**
   * What `filesystem` durability falls back to without syncfs: fsync each file, then each
   * directory. The root is closed to others (0700) meanwhile, as while it was being written, since
   * a file its owner cannot read is made readable for a moment.
   */
  async syncEachWritten(targetDir: string, rootMode: number): Promise<void> {
    await applyMode(targetDir, 0o700, false);
    await runBounded(this.files.length, this.concurrency, async (i) => {
      const job = this.files[i]!;
      await syncPath(job.abs, false, job.mode, job.owned === true).catch((error: unknown) => {
        throw withPath(error, job.path);
      });
    });
    const dirs = [...this.dirModes].sort((a, b) => b.depth - a.depth);
    await runBounded(dirs.length, this.concurrency, async (i) => {
      const dir = dirs[i]!;
      await syncPath(dir.abs, true, dir.mode, true).catch((error: unknown) => {
        throw withPath(error, dir.path);
      });
    });
    await applyMode(targetDir, rootMode, true);
  }
}

/** The process umask (what mkdir takes away from a mode); all bits where it cannot be read. */
function currentUmask(): number {
  try {
    return process.umask();
  } catch {
    return 0o777; // a worker thread: every directory then gets its mode applied after creation
  }
}

async function applyMode(absPath: string, mode: number, sync: boolean): Promise<void> {
  const fd = await openFd(absPath, OPEN_DIR);
  try {
    await fchmodFd(fd, mode);
    if (sync) await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}

/**
 * fsyncs a file or directory of the new tree. One whose mode forbids its owner to read it (open
 * fails with EACCES unless running as root) is made readable for the moment if it is ours; a
 * hardlinked file is never chmod-ed (it could be opened to be verified, so it can be opened now).
 */
async function syncPath(absPath: string, isDir: boolean, mode: number, owned: boolean): Promise<void> {
  const flags = isDir ? OPEN_DIR : OPEN_FILE;
  let fd: number;
  try {
    fd = await openFd(absPath, flags);
  } catch (error) {
    if (!owned || (error as NodeJS.ErrnoException).code !== 'EACCES') throw error;
    await chmod(absPath, mode | (isDir ? 0o500 : 0o400));
    fd = await openFd(absPath, flags);
    const opened = fd;
    await fchmodFd(opened, mode).catch(async (chmodError: unknown) => {
      await closeFd(opened);
      throw chmodError;
    });
  }
  try {
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}

function checkConcurrency(value: number | undefined): number {
  if (value === undefined) return DEFAULT_CONCURRENCY;
  if (!Number.isInteger(value) || value < 1 || value > MAX_CONCURRENCY)
    throw new FlotillaError('FLT_VALIDATION', `concurrency must be an integer from 1 to ${MAX_CONCURRENCY}`, {
      details: { concurrency: value },
    });
  return value;
}

function checkDurability(options: MaterializeOptions): Durability {
  const durability = options.durability ?? 'file';
  if (durability !== 'file' && durability !== 'filesystem' && durability !== 'none')
    throw new FlotillaError('FLT_VALIDATION', `durability must be 'file', 'filesystem' or 'none'`, {
      details: { durability },
    });
  return durability;
}

function checkReuseMode(mode: ReuseMode | undefined): ReuseMode {
  if (mode === undefined) return 'link';
  if (mode !== 'link' && mode !== 'copy')
    throw new FlotillaError('FLT_VALIDATION', `reuseMode must be 'link' or 'copy'`, {
      details: { reuseMode: mode },
    });
  return mode;
}

/**
 * Writes the tree `root` into `targetDir`, which must not exist yet (its parent must). Every object
 * and chunk is verified against its hash before it is written; files are created with O_EXCL and
 * O_NOFOLLOW, symlinks are checked not to escape the tree. Files found in `reuse` trees are linked
 * or copied from there once verified (docs/store.md, "Staging with reuse"). Up to `concurrency`
 * files are written at once. On any failure the partly written directory is removed, so the
 * caller sees either the whole tree or nothing; the error is the first in tree order among the
 * operations that failed.
 */
export async function materialize(
  reader: StoreReader,
  root: string,
  targetDir: string,
  options: MaterializeOptions = {},
): Promise<MaterializeStats> {
  // Awaited below; a rejection while something else fails first must not go unhandled.
  options.pending?.catch(() => undefined);
  const limits = resolveLimits(options.limits);
  const rootMode = checkMode(options.rootMode ?? 0o755, limits, 'rootMode');
  const durability = checkDurability(options);
  const concurrency = checkConcurrency(options.concurrency);
  const reuseMode = checkReuseMode(options.reuseMode);
  const materializer = new Materializer(
    reader,
    limits,
    durability,
    concurrency,
    reuseMode,
    options.wholeFiles,
    options.trusted,
    options.recordStamps === true,
    options.reuse ?? [],
  );
  try {
    await mkdir(targetDir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FlotillaError(
        'FLT_TARGET_EXISTS',
        `${targetDir} already exists; materialize needs a fresh directory`,
        { details: { targetDir } },
      );
    }
    throw asIoError(error, targetDir);
  }
  let reuse: Promise<ReuseIndex> | undefined;
  try {
    // The old trees are indexed while the new one's directories are created (never rejects).
    if (options.reuse !== undefined && options.reuse.length > 0)
      reuse = buildReuseIndex(materializer.loadDir, options.reuse, limits, concurrency);
    await materializer.dirs(root, targetDir);
    await materializer.fileObjects();
    const targetDev = (await stat(targetDir, { bigint: true })).dev;
    const reuseIndex = await reuse;
    const rest = await materializer.linkStamped(reuseIndex, targetDev);
    if (options.pending !== undefined) materializer.trust((await options.pending) ?? []);
    await materializer.writeFiles(rest, reuseIndex, targetDev);
    await materializer.applyDirModes();
    await applyMode(targetDir, rootMode, durability === 'file');
    if (durability === 'filesystem' && !(await syncFilesystem(targetDir)))
      await materializer.syncEachWritten(targetDir, rootMode);
  } catch (error) {
    await reuse;
    await materializer.settle();
    await rm(targetDir, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
  return materializer.stats;
}
