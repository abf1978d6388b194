import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import {
  DEFAULT_MAX_DECODED_BYTES,
  FRAME_HEADER_LENGTH,
  decodeFrame,
  encodeFrame,
  readFrameHeader,
} from '../codec/frame.js';
import type { EncodeOptions } from '../codec/frame.js';
import { asIoError } from '../io-error.js';
import { assertContentId, contentId, verifyContentId } from '../objects/ids.js';
import type { ObjectSink, StoreReader } from '../store-api.js';

export interface FsStoreOptions {
  /** Directory of the store; created if missing. */
  root: string;
  /** Re-hash every chunk and object when it is read (default true). */
  verifyOnRead?: boolean;
  /** Codec for newly written frames (default zstd level 3). */
  encode?: EncodeOptions;
  /** Largest decoded chunk or object accepted, bytes (default 64 MiB). */
  maxDecodedBytes?: number;
  /** fsync each file before renaming it into place (default true). */
  fsync?: boolean;
  /**
   * Synchronous file calls (default false). A frame is a few KB to a few hundred: on a local disk
   * a synchronous open + read + close takes microseconds, while the promise API costs a thread
   * pool round trip and a FileHandle per call, which made them most of an agent update's time on
   * a tree of 3,000 files (bench/README.md "delta"). The agent, which alone uses its cache, turns
   * this on; the server, serving many clients from one event loop, keeps it off.
   */
  syncIo?: boolean;
  /** Permission bits of new frame files (default 0o644); the server keeps its store 0o600. */
  fileMode?: number;
  /** Permission bits of new directories (default 0o777 less the umask); the server uses 0o700. */
  dirMode?: number;
}

const STALE_TEMP_MS = 60 * 60 * 1000;

/** Why a frame could not be opened: absent (FLT_OBJECT_MISSING) or a file system error (FLT_IO). */
function openError(error: unknown, id: string, path: string): unknown {
  if (isErrno(error, 'ENOENT'))
    return new FlotillaError('FLT_OBJECT_MISSING', `no object or chunk ${id} in the store`, {
      details: { id },
    });
  return asIoError(error, path);
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

/**
 * A content-addressed store in a directory: `objects/ab/cdef…` holds the frame (codec header +
 * payload) of the chunk or object whose SHA-256 is `abcdef…`. Writes go to `tmp/`, are fsynced and
 * renamed into place, so a crash leaves either the whole file or none. Every write is verified
 * against its id; reads are verified unless `verifyOnRead` is false. The server and the agent
 * both use it.
 */
export class FsStore implements ObjectSink, StoreReader {
  readonly root: string;
  private readonly objectsDir: string;
  private readonly tmpDir: string;
  private readonly verifyOnRead: boolean;
  private readonly encode: EncodeOptions;
  private readonly maxDecodedBytes: number;
  private readonly fsync: boolean;
  private readonly syncIo: boolean;
  private readonly fileMode: number;
  private readonly dirOptions: { recursive: true; mode?: number };
  /** Shard directories known to exist (sync mode), so a write needs no mkdir. */
  private readonly shards = new Set<string>();
  /**
   * Temporary names: random per store (processes may share it), then counted. A random name per
   * write cost a `getrandom` call each, ~0.3 ms on a loaded VM: 20 ms of an 80-chunk fetch.
   */
  private readonly tmpPrefix = randomBytes(6).toString('hex');
  private tmpCount = 0;

  private constructor(options: FsStoreOptions) {
    this.root = options.root;
    this.objectsDir = join(options.root, 'objects');
    this.tmpDir = join(options.root, 'tmp');
    this.verifyOnRead = options.verifyOnRead ?? true;
    this.encode = options.encode ?? {};
    this.maxDecodedBytes = options.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
    this.fsync = options.fsync ?? true;
    this.syncIo = options.syncIo ?? false;
    this.fileMode = options.fileMode ?? 0o644;
    this.dirOptions =
      options.dirMode === undefined ? { recursive: true } : { recursive: true, mode: options.dirMode };
  }

  /** Opens (creating if needed) a store rooted at `options.root`. */
  static async open(options: FsStoreOptions): Promise<FsStore> {
    const store = new FsStore(options);
    try {
      await mkdir(store.objectsDir, store.dirOptions);
      await mkdir(store.tmpDir, store.dirOptions);
      await store.removeStaleTemps();
    } catch (error) {
      throw asIoError(error, options.root);
    }
    return store;
  }

  // Temp files left by a crash are never renamed into place; those older than an hour cannot
  // belong to a write still in progress (another process may share the store) and are removed.
  private async removeStaleTemps(): Promise<void> {
    const cutoff = Date.now() - STALE_TEMP_MS;
    for (const name of await readdir(this.tmpDir)) {
      const path = join(this.tmpDir, name);
      const info = await stat(path).catch(() => null);
      if (info !== null && info.isFile() && info.mtimeMs < cutoff) await unlink(path).catch(() => undefined);
    }
  }

  /** Path of the frame file for `id`. */
  pathOf(id: string): string {
    assertContentId(id);
    return join(this.objectsDir, id.slice(0, 2), id.slice(2));
  }

  async has(id: string): Promise<boolean> {
    if (this.syncIo) return this.hasSync(id);
    try {
      const handle = await open(this.pathOf(id), 'r');
      await handle.close();
      return true;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return false;
      throw asIoError(error, this.pathOf(id));
    }
  }

  private hasSync(id: string): boolean {
    const path = this.pathOf(id);
    try {
      return fs.statSync(path, { throwIfNoEntry: false }) !== undefined;
    } catch (error) {
      throw asIoError(error, path);
    }
  }

  /** The subset of `ids` this store lacks, in the given order, without duplicates ("which do you lack?"). */
  async missing(ids: Iterable<string>): Promise<string[]> {
    const lacking: string[] = [];
    const seen = new Set<string>();
    for (const id of ids) {
      if (seen.has(id)) continue;
      seen.add(id);
      if (!(await this.has(id))) lacking.push(id);
    }
    return lacking;
  }

  /** Stores a chunk; resolves to the bytes written to disk (0 when it was already there). */
  putChunk(id: string, bytes: Uint8Array): Promise<number> {
    return this.putBytes(id, bytes);
  }

  putObject(id: string, bytes: Uint8Array): Promise<number> {
    return this.putBytes(id, bytes);
  }

  /**
   * Stores a frame received as is (e.g. uploaded by the CLI): it is decoded within the size limit
   * and its content verified against `id` first, so a bad frame is refused and nothing is written.
   */
  async putFrame(id: string, frame: Uint8Array): Promise<number> {
    return (await this.putFrameDecoded(id, frame)).written;
  }

  /** `putFrame`, also giving back the frame's content (decoded and verified on the way). */
  async putFrameDecoded(id: string, frame: Uint8Array): Promise<{ written: number; content: Uint8Array }> {
    assertContentId(id);
    if (frame.length > this.maxDecodedBytes + FRAME_HEADER_LENGTH) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `frame of ${frame.length} bytes is more than the store's limit`,
        { details: { id } },
      );
    }
    const content = decodeFrame(frame, this.maxDecodedBytes);
    verifyContentId(id, content);
    if (await this.has(id)) return { written: 0, content };
    await this.writeAtomically(id, frame);
    return { written: frame.length, content };
  }

  getChunk(id: string): Promise<Uint8Array> {
    return this.getBytes(id);
  }

  getObject(id: string): Promise<Uint8Array> {
    return this.getBytes(id);
  }

  /** The stored frame of `id`, to serve as is (immutable, cacheable); verified like any read. */
  async getFrame(id: string): Promise<Buffer> {
    const frame = await this.readFrame(id);
    if (this.verifyOnRead) this.checkRead(id, decodeFrame(frame, this.maxDecodedBytes));
    else readFrameHeader(frame, this.maxDecodedBytes);
    return frame;
  }

  /** Removes `id` if present (garbage collection); true if something was removed. */
  async remove(id: string): Promise<boolean> {
    try {
      if (this.syncIo) fs.unlinkSync(this.pathOf(id));
      else await unlink(this.pathOf(id));
      return true;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return false;
      throw asIoError(error, this.pathOf(id));
    }
  }

  /** Every id in the store, in no particular order. */
  async *list(): AsyncGenerator<string> {
    for (const shard of await this.readDir(this.objectsDir)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const rest of await this.readDir(join(this.objectsDir, shard))) {
        const id = shard + rest;
        if (/^[0-9a-f]{64}$/.test(id)) yield id;
      }
    }
  }

  private async readDir(path: string): Promise<string[]> {
    try {
      return await readdir(path);
    } catch (error) {
      throw asIoError(error, path);
    }
  }

  private async putBytes(id: string, bytes: Uint8Array): Promise<number> {
    assertContentId(id);
    verifyContentId(id, bytes);
    if (bytes.length > this.maxDecodedBytes) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `${bytes.length} bytes is more than the store's limit of ${this.maxDecodedBytes}`,
      );
    }
    if (await this.has(id)) return 0;
    const frame = encodeFrame(bytes, this.encode);
    await this.writeAtomically(id, frame);
    return frame.length;
  }

  private async writeAtomically(id: string, frame: Uint8Array): Promise<void> {
    const finalPath = this.pathOf(id);
    const tmpPath = join(this.tmpDir, `${id}.${this.tmpPrefix}${(this.tmpCount++).toString(36)}`);
    if (this.syncIo) {
      this.writeAtomicallySync(id, frame, tmpPath, finalPath);
      return;
    }
    const handle = await open(tmpPath, 'wx', this.fileMode).catch((error: unknown) => {
      throw asIoError(error, tmpPath);
    });
    try {
      await handle.writeFile(frame);
      if (this.fsync) await handle.sync();
      await handle.close();
      await mkdir(join(this.objectsDir, id.slice(0, 2)), this.dirOptions);
      await rename(tmpPath, finalPath);
    } catch (error) {
      await handle.close().catch(() => undefined);
      await unlink(tmpPath).catch(() => undefined);
      throw asIoError(error, finalPath);
    }
  }

  private writeAtomicallySync(id: string, frame: Uint8Array, tmpPath: string, finalPath: string): void {
    let fd: number;
    try {
      fd = fs.openSync(tmpPath, 'wx', this.fileMode);
    } catch (error) {
      throw asIoError(error, tmpPath);
    }
    try {
      for (let offset = 0; offset < frame.length;)
        offset += fs.writeSync(fd, frame, offset, frame.length - offset);
      if (this.fsync) fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = -1;
      const shard = join(this.objectsDir, id.slice(0, 2));
      if (!this.shards.has(shard)) {
        fs.mkdirSync(shard, this.dirOptions);
        this.shards.add(shard);
      }
      fs.renameSync(tmpPath, finalPath);
    } catch (error) {
      if (fd >= 0) fs.closeSync(fd);
      fs.rmSync(tmpPath, { force: true });
      throw asIoError(error, finalPath);
    }
  }

  private readFrameSync(id: string): Buffer {
    const path = this.pathOf(id);
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (error) {
      throw openError(error, id, path);
    }
    try {
      const { size } = fs.fstatSync(fd);
      this.checkStoredSize(id, size);
      return fs.readFileSync(fd);
    } catch (error) {
      throw asIoError(error, path);
    } finally {
      fs.closeSync(fd);
    }
  }

  // A frame is never much larger than its decoded limit: incompressible data is stored raw.
  private checkStoredSize(id: string, size: number): void {
    if (size > this.maxDecodedBytes + FRAME_HEADER_LENGTH) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `stored frame of ${id} is ${size} bytes, more than the limit`,
        {
          details: { id, size },
        },
      );
    }
  }

  private async readFrame(id: string): Promise<Buffer> {
    if (this.syncIo) return this.readFrameSync(id);
    const path = this.pathOf(id);
    let handle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      throw openError(error, id, path);
    }
    try {
      const { size } = await handle.stat();
      this.checkStoredSize(id, size);
      return await handle.readFile();
    } catch (error) {
      throw asIoError(error, path);
    } finally {
      await handle.close();
    }
  }

  private async getBytes(id: string): Promise<Uint8Array> {
    const frame = await this.readFrame(id);
    let bytes: Buffer;
    try {
      bytes = decodeFrame(frame, this.maxDecodedBytes);
    } catch (error) {
      if (error instanceof FlotillaError) {
        throw new FlotillaError(error.code, `stored ${id} is corrupt: ${error.message}`, {
          details: { id, path: this.pathOf(id) },
          cause: error,
        });
      }
      throw error;
    }
    if (this.verifyOnRead) this.checkRead(id, bytes);
    return bytes;
  }

  private checkRead(id: string, bytes: Uint8Array): void {
    const actual = contentId(bytes);
    if (actual !== id) {
      throw new FlotillaError(
        'FLT_HASH_MISMATCH',
        `stored ${id} is corrupt: its content hashes to ${actual}`,
        {
          details: { id, actual, path: this.pathOf(id) },
        },
      );
    }
  }
}
