/**
 * Where the server keeps chunks and tree objects. `ObjectStore` is the seam for other backends
 * (object storage later); `FsObjectStore` keeps codec frames under `<dataDir>/objects` through
 * `@flotilla/store`'s `FsStore`, so a frame is written once (verified, fsynced, renamed) and served
 * as is.
 */
import { stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { FsStore } from '@flotilla/store';
import type { StoreReader } from '@flotilla/store';
import { DATA_DIR_MODE, DATA_FILE_MODE } from '../data-dir.js';

export interface StoredObject {
  id: string;
  /** Stored (frame) bytes. */
  size: number;
  /** Last written or last wanted by a push; garbage collection spares recent objects. */
  modifiedAt: Date;
}

export interface ObjectStore extends StoreReader {
  has(id: string): Promise<boolean>;
  /** The subset of `ids` not stored; present ones are marked recently wanted (GC grace). */
  missing(ids: readonly string[]): Promise<string[]>;
  /** Stores raw bytes after checking they hash to `id`; false when the object was already stored. */
  put(id: string, bytes: Uint8Array): Promise<boolean>;
  /** The stored frame (codec header + payload), verified. FLT_OBJECT_MISSING if absent. */
  get(id: string): Promise<Buffer>;
  /** Stored (frame) size in bytes, or undefined if absent. */
  size(id: string): Promise<number | undefined>;
  delete(id: string): Promise<boolean>;
  list(): AsyncIterable<StoredObject>;
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}

export class FsObjectStore implements ObjectStore {
  private constructor(private readonly store: FsStore) {}

  /** Opens (creating) the store under `<dataDir>/objects`. */
  static async open(dataDir: string): Promise<FsObjectStore> {
    return new FsObjectStore(
      await FsStore.open({
        root: join(dataDir, 'objects'),
        fileMode: DATA_FILE_MODE,
        dirMode: DATA_DIR_MODE,
      }),
    );
  }

  has(id: string): Promise<boolean> {
    return this.store.has(id);
  }

  async missing(ids: readonly string[]): Promise<string[]> {
    const lacking = await this.store.missing(ids);
    const absent = new Set(lacking);
    const now = new Date();
    for (const id of new Set(ids)) {
      if (absent.has(id)) continue;
      // A push asks before it uploads and creates its release; keep what it was told it need not send.
      await utimes(this.store.pathOf(id), now, now).catch((error: unknown) => {
        if (!isErrno(error, 'ENOENT')) throw error;
        lacking.push(id);
      });
    }
    return lacking;
  }

  async put(id: string, bytes: Uint8Array): Promise<boolean> {
    if (await this.store.has(id)) {
      const now = new Date();
      await utimes(this.store.pathOf(id), now, now).catch(() => undefined);
      return false;
    }
    await this.store.putObject(id, bytes);
    return true;
  }

  get(id: string): Promise<Buffer> {
    return this.store.getFrame(id);
  }

  getObject(id: string): Promise<Uint8Array> {
    return this.store.getObject(id);
  }

  getChunk(id: string): Promise<Uint8Array> {
    return this.store.getChunk(id);
  }

  async size(id: string): Promise<number | undefined> {
    try {
      return (await stat(this.store.pathOf(id))).size;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return undefined;
      throw new FlotillaError('FLT_IO', `cannot stat object ${id}`, { cause: error });
    }
  }

  delete(id: string): Promise<boolean> {
    return this.store.remove(id);
  }

  async *list(): AsyncIterable<StoredObject> {
    for await (const id of this.store.list()) {
      try {
        const info = await stat(this.store.pathOf(id));
        yield { id, size: info.size, modifiedAt: info.mtime };
      } catch (error) {
        if (!isErrno(error, 'ENOENT')) throw error;
      }
    }
  }
}
