/**
 * Files the agent rebuilt from deltas, kept whole in `<cache>/files/<file-object id>`: uncompressed,
 * with the mode the release gives them, so that staging hardlinks each one into the release instead
 * of writing its content a second time out of compressed chunks (docs/updates.md "Staging"). They
 * stand in the cache for the chunks of those files: the chunk cache reads such a chunk out of the
 * whole file, verified by hash like any read, when its own store lacks it.
 *
 * Written with synchronous calls (as the chunk store is: a thread-pool round trip per call cost
 * more than the call) to a temporary name, then renamed, so a name always holds a complete write;
 * not fsynced (the stage step's syncfs covers it). A file torn by a power cut fails its hash check
 * on read and is removed.
 *
 * Each file written is given a modification time a few seconds in the past and stamped (store's
 * stamps.ts), in memory only: staging links a whole file its stamp still vouches for without
 * reading it back. After a restart, whole files are verified by content as before.
 */
import fs, { constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol/errors';
import { backdatedSeconds, contentId, racyAfterNs, readExactlySync, stampOf } from '@flotilla/store/rebuild';
import type { FileObject, FileStamp } from '@flotilla/store/rebuild';
import { ioError } from '../util/fs-ops.js';

const ID = /^[0-9a-f]{64}$/;
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const TEMP_SUFFIX = '.tmp';

export class WholeFiles {
  /** Stamps of the files written by this process, by file-object id. */
  private readonly stamped = new Map<string, FileStamp>();

  private constructor(readonly dir: string) {}

  /** Opens (creating) the directory and removes temporary files a crash left behind. */
  static open(dir: string): WholeFiles {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (const name of fs.readdirSync(dir))
        if (name.endsWith(TEMP_SUFFIX)) fs.rmSync(join(dir, name), { force: true });
    } catch (error) {
      throw ioError('cannot open', dir, error);
    }
    return new WholeFiles(dir);
  }

  pathOf(id: string): string {
    if (!ID.test(id)) throw new FlotillaError('FLT_VALIDATION', `not a content id: ${id}`);
    return join(this.dir, id);
  }

  has(id: string): boolean {
    try {
      return fs.lstatSync(this.pathOf(id)).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Whether a file can be kept whole: its owner must be able to read it back (a chunk is read out
   * of it, and staging verifies it before linking).
   */
  static canHold(file: Pick<FileObject, 'mode'>): boolean {
    return (file.mode & 0o400) !== 0;
  }

  /**
   * Stores `content`, which the caller has verified against `file` (the file object `id`). Returns
   * the bytes written (0 if it was there already).
   */
  put(id: string, file: Pick<FileObject, 'mode' | 'size'>, content: Uint8Array): number {
    const { written, stamp } = writeWholeFile(this.dir, id, file, content);
    if (stamp !== undefined) this.stamped.set(id, stamp);
    return written;
  }

  /**
   * Starts writing the whole file `id` back to disk (fdatasync on a thread of the pool, not
   * awaited): the stage step's syncfs then finds it mostly clean instead of writing the whole
   * layer out at the end (bench/README.md "containers": stage 1.12 s against 1.52 s, medians).
   * Durability still comes from that syncfs; a failure here is ignored.
   */
  writeBack(id: string): void {
    void fs.promises
      .open(this.pathOf(id), READ)
      .then((handle) => handle.datasync().finally(() => handle.close()))
      .catch(() => undefined);
  }

  /** Records the stamp of a whole file that `writeWholeFile` wrote (on another thread). */
  adopt(id: string, stamp: FileStamp | undefined): void {
    if (stamp !== undefined) this.stamped.set(id, stamp);
  }

  /**
   * `size` bytes at `offset` of the whole file `id`, checked against `chunkId`. FLT_OBJECT_MISSING
   * if the file is not there; FLT_HASH_MISMATCH if what is there does not match.
   */
  readChunk(id: string, chunkId: string, offset: number, size: number): Buffer {
    const path = this.pathOf(id);
    let fd: number;
    try {
      fd = fs.openSync(path, READ);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        throw new FlotillaError('FLT_OBJECT_MISSING', `no chunk ${chunkId} in the cache`, {
          details: { id: chunkId },
        });
      throw ioError('cannot read', path, error);
    }
    try {
      const bytes = Buffer.allocUnsafe(size);
      if (!readExactlySync(fd, bytes, offset) || contentId(bytes) !== chunkId)
        throw new FlotillaError('FLT_HASH_MISMATCH', `chunk ${chunkId} read from ${path} does not match`, {
          details: { id: chunkId, file: id },
        });
      return bytes;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Stamps of the whole files this process wrote (still to be checked against the inode: stamps.ts). */
  stamps(): IterableIterator<FileStamp> {
    return this.stamped.values();
  }

  remove(id: string): boolean {
    this.stamped.delete(id);
    try {
      fs.unlinkSync(this.pathOf(id));
      return true;
    } catch {
      return false;
    }
  }

  /** Every whole file with its size on disk. */
  list(): { id: string; size: number }[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (error) {
      throw ioError('cannot list', this.dir, error);
    }
    const out: { id: string; size: number }[] = [];
    for (const name of names) {
      if (!ID.test(name)) continue;
      try {
        out.push({ id: name, size: fs.lstatSync(join(this.dir, name)).size });
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }
}

/**
 * Writes `content` as the whole file `id` in `dir` (the work of `WholeFiles.put`, callable from a
 * worker thread): to a temporary name, with its mode and a backdated modification time, then
 * renamed. Returns the bytes written (0 if it was there already) and its stamp.
 */
export function writeWholeFile(
  dir: string,
  id: string,
  file: Pick<FileObject, 'mode' | 'size'>,
  content: Uint8Array,
): { written: number; stamp?: FileStamp } {
  if (!ID.test(id)) throw new FlotillaError('FLT_VALIDATION', `not a content id: ${id}`);
  const final = join(dir, id);
  if (fs.lstatSync(final, { throwIfNoEntry: false })?.isFile()) return { written: 0 };
  const temp = join(dir, `${id}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  const now = Date.now();
  let stamp: FileStamp | undefined;
  try {
    const fd = fs.openSync(temp, CREATE, 0o600);
    try {
      let done = 0;
      while (done < file.size) done += fs.writeSync(fd, content, done, file.size - done);
      fs.fchmodSync(fd, file.mode);
      const backdated = backdatedSeconds(now);
      fs.futimesSync(fd, backdated, backdated);
      stamp = stampOf(id, fs.fstatSync(fd, { bigint: true }), racyAfterNs(now));
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, final);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw ioError('cannot write', final, error);
  }
  return stamp === undefined ? { written: file.size } : { written: file.size, stamp };
}
