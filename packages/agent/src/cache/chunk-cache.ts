/**
 * The local chunk cache `<data-dir>/chunks/`, shared by all apps: an FsStore (verified writes,
 * atomic renames) plus recency in state.db for LRU eviction under a size cap. Chunks and objects of
 * protected releases (current and previous) are never evicted. A corrupt item found on read is
 * removed at once, so the next fetch brings it again.
 *
 * Writes are not fsynced (a journal commit per chunk was most of a fetch's time): staging, which
 * reads the new chunks right after, ends with one syncfs of the filesystem, which covers the cache
 * when it shares the data dir's filesystem. A chunk lost or torn by a power cut before that is
 * caught by the hash check on read, removed, and fetched again (the stage step's scrub).
 *
 * Files rebuilt from deltas are kept whole beside the chunks (whole-files.ts) and stand in for
 * their chunks: `getChunk` reads a chunk out of such a file when the store lacks it.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { WeightedLru } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import { FsStore, parseObject } from '@flotilla/store';
import type { FileObject, FileStamp, ObjectSink, StoreReader, TreeObject } from '@flotilla/store';
import type { StateDatabase } from '../state/db.js';
import { WholeFiles } from './whole-files.js';

export interface ChunkCacheOptions {
  dir: string;
  db: StateDatabase;
  /** Size cap in bytes of stored frames; eviction brings the cache below it. */
  maxBytes: number;
  /** Reports items found corrupt (and removed). */
  onCorrupt?: (id: string, error: FlotillaError) => void;
  /** Reports a deferred recency flush that failed (it is tried again at the next flush). */
  onFlushError?: (error: unknown) => void;
}

export interface EvictionResult {
  removed: number;
  bytesRemoved: number;
  bytesKept: number;
}

const CORRUPTION = new Set(['FLT_HASH_MISMATCH', 'FLT_CHUNK_ENCODING_INVALID', 'FLT_LIMIT_EXCEEDED']);

/** Tree objects kept in memory (bytes), and the largest one kept. */
const OBJECT_MEMO_BYTES = 64 * 1024 * 1024;
const OBJECT_MEMO_MAX_ITEM = 1024 * 1024;

export class ChunkCache implements StoreReader, ObjectSink {
  private readonly touched = new Map<string, number>();
  /**
   * Verified tree objects, least recently used first. An update reads every file and directory
   * object of the new and the installed releases several times (fetch walk, delta pairing, staging,
   * reuse, what eviction protects); from disk that was thousands of opens each time. `parsed` is
   * filled the first time a walk parses the bytes (parsing verifies them against the id).
   */
  private readonly objects = new WeightedLru<string, { bytes: Uint8Array; parsed?: TreeObject }>({
    weigh: (held) => held.bytes.length,
    maxWeight: OBJECT_MEMO_BYTES,
    maxItemWeight: OBJECT_MEMO_MAX_ITEM,
  });
  /** Bytes of stored frames; null until `overCap` first scans the directory. */
  private storedBytes: number | null = null;
  private lastTouch = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  /** Ids of the whole files on disk (listed at open, kept up to date). */
  private readonly wholeIds: Set<string>;
  /** Where each chunk of a whole file lies in it; built at the first chunk the store lacks. */
  private wholeChunks: Map<string, { file: string; offset: number; size: number }> | null = null;

  private constructor(
    readonly store: FsStore,
    readonly whole: WholeFiles,
    private readonly options: ChunkCacheOptions,
  ) {
    this.wholeIds = new Set(whole.list().map((f) => f.id));
  }

  static async open(options: ChunkCacheOptions): Promise<ChunkCache> {
    // Synchronous calls and zstd level 1: see FsStoreOptions.syncIo; the cache favours speed over size.
    const store = await FsStore.open({
      root: options.dir,
      fsync: false,
      syncIo: true,
      encode: { codec: 'zstd', level: 1 },
    });
    return new ChunkCache(store, WholeFiles.open(join(options.dir, 'files')), options);
  }

  has(id: string): Promise<boolean> {
    return this.store.has(id);
  }

  missing(ids: Iterable<string>): Promise<string[]> {
    return this.store.missing(ids);
  }

  async getObject(id: string): Promise<Uint8Array> {
    const memo = this.objects.get(id);
    if (memo !== undefined) {
      this.touch(id);
      return memo.bytes;
    }
    const bytes = await this.read(id, () => this.store.getObject(id));
    this.remember(id, bytes);
    return bytes;
  }

  /** The object `id` parsed and verified against its id (FLT_* like `parseObject` otherwise). */
  getTreeObject(id: string): Promise<TreeObject> {
    return this.treeObject(id, true);
  }

  /**
   * `recordUse` false is for walks that only look (what is reachable, what to protect): no recency
   * is recorded, so such a walk never makes a release look recently used to eviction.
   */
  private async treeObject(id: string, recordUse: boolean): Promise<TreeObject> {
    const held = this.objects.peek(id);
    if (held?.parsed !== undefined) {
      if (recordUse) this.touch(id);
      return held.parsed;
    }
    const bytes = recordUse ? await this.getObject(id) : (held?.bytes ?? (await this.store.getObject(id)));
    const object = parseObject(bytes, { expectedId: id });
    const entry = this.objects.peek(id);
    if (entry !== undefined) entry.parsed = object;
    return object;
  }

  private remember(id: string, bytes: Uint8Array): void {
    if (!this.objects.has(id)) this.objects.set(id, { bytes });
  }

  private forget(id: string): void {
    this.objects.delete(id);
  }

  async getChunk(id: string): Promise<Uint8Array> {
    try {
      return await this.read(id, () => this.store.getChunk(id));
    } catch (error) {
      if (!(error instanceof FlotillaError && error.code === 'FLT_OBJECT_MISSING')) throw error;
      const at = (await this.chunksOfWholeFiles()).get(id);
      if (at === undefined) throw error;
      return this.read(at.file, () => this.whole.readChunk(at.file, id, at.offset, at.size), true);
    }
  }

  /** Whether the file object `id` is held as a whole file (then its chunks need no fetching). */
  hasWholeFile(id: string): boolean {
    return this.wholeIds.has(id);
  }

  /** The path of the whole file `id`, if held (unverified: whoever uses it verifies it). */
  wholeFilePath(id: string): string | undefined {
    if (!this.wholeIds.has(id)) return undefined;
    this.touch(id);
    return this.whole.pathOf(id);
  }

  /** Stamps of the whole files written since the agent started (staging trusts those still matching). */
  wholeFileStamps(): Iterable<FileStamp> {
    return this.whole.stamps();
  }

  /** Keeps `content`, verified against `file` (the file object `id`) by the caller, as a whole file. */
  putWholeFile(id: string, file: FileObject, content: Uint8Array): void {
    this.adoptWholeFile(id, file, { written: this.whole.put(id, file, content) });
  }

  /** The directory whole files are kept in (`writeWholeFile` there, then `adoptWholeFile`). */
  get wholeFilesDir(): string {
    return this.whole.dir;
  }

  /** Takes in the whole file `id` that `writeWholeFile` wrote into `wholeFilesDir`. */
  adoptWholeFile(id: string, file: FileObject, result: { written: number; stamp?: FileStamp }): void {
    this.whole.adopt(id, result.stamp);
    this.wholeIds.add(id);
    if (this.wholeChunks !== null) this.indexWholeFile(id, file);
    this.written(id, result.written);
  }

  private async chunksOfWholeFiles(): Promise<Map<string, { file: string; offset: number; size: number }>> {
    if (this.wholeChunks === null) {
      this.wholeChunks = new Map();
      for (const id of this.wholeIds) {
        const object = await this.treeObject(id, false).catch(() => null);
        if (object?.type === 'file') this.indexWholeFile(id, object);
      }
    }
    return this.wholeChunks;
  }

  private indexWholeFile(id: string, file: FileObject): void {
    let offset = 0;
    for (const chunk of file.chunks) {
      this.wholeChunks?.set(chunk.id, { file: id, offset, size: chunk.size });
      offset += chunk.size;
    }
  }

  private removeWholeFile(id: string): boolean {
    this.wholeIds.delete(id);
    if (this.wholeChunks !== null)
      for (const [chunk, at] of this.wholeChunks) if (at.file === id) this.wholeChunks.delete(chunk);
    return this.whole.remove(id);
  }

  async putChunk(id: string, bytes: Uint8Array): Promise<void> {
    this.written(id, await this.store.putChunk(id, bytes));
  }

  async putObject(id: string, bytes: Uint8Array): Promise<void> {
    this.written(id, await this.store.putObject(id, bytes));
    this.remember(id, bytes);
  }

  /** Stores a frame received from the server; decoded and verified against `id` first. */
  async putFrame(id: string, frame: Uint8Array): Promise<void> {
    this.written(id, await this.store.putFrame(id, frame));
  }

  async remove(id: string): Promise<boolean> {
    this.forget(id);
    this.storedBytes = null; // its size is unknown here: scan again when next asked
    const whole = this.wholeIds.has(id) && this.removeWholeFile(id);
    return (await this.store.remove(id)) || whole;
  }

  /**
   * Whether the cache holds more than its cap. The first call scans the directory; after that a
   * running count answers, so an update under the cap skips eviction (and the walk over every
   * installed release that working out what to protect takes).
   */
  async overCap(): Promise<boolean> {
    if (this.storedBytes === null) {
      let total = 0;
      for await (const id of this.store.list())
        total += (await stat(this.store.pathOf(id)).catch(() => null))?.size ?? 0;
      for (const file of this.whole.list()) total += file.size;
      this.storedBytes = total;
    }
    return this.storedBytes > this.options.maxBytes;
  }

  /**
   * Flushes recency a few seconds from now, off the update's path (thousands of upserts took a
   * tenth of a small update). Eviction and close flush first, so nothing they need is missing; a
   * crash loses at most those seconds of recency, which only orders eviction.
   */
  flushRecencySoon(delayMs = 5000): void {
    if (this.flushTimer !== null) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      try {
        this.flushRecency();
      } catch (error) {
        // state.db closed or unwritable: recency stays in memory for the next flush
        this.options.onFlushError?.(error);
      }
    }, delayMs);
    this.flushTimer.unref();
  }

  /** Writes recency kept in memory to state.db (batched: one transaction, not one write per read). */
  flushRecency(): void {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    if (this.touched.size === 0) return;
    const upsert = this.options.db.prepare(
      'INSERT INTO chunk_use (id, used_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET used_at = excluded.used_at',
    );
    const entries = [...this.touched];
    this.options.db.transaction(() => {
      for (const [id, at] of entries) upsert.run(id, at);
    })();
    this.touched.clear();
  }

  /** Every object and chunk id reachable from `roots` that the cache holds (what it lacks is left out). */
  async reachable(roots: Iterable<string>): Promise<Set<string>> {
    const seen = new Set<string>();
    const visited = new Set<string>();
    const stack = [...roots];
    while (stack.length > 0) {
      const id = stack.pop() as string;
      if (visited.has(id)) continue;
      visited.add(id);
      // An object held in memory was read from (or written to) the store: no stat needed (one per
      // object of every installed release was most of this walk).
      if (!this.objects.has(id) && !(await this.store.has(id))) continue;
      seen.add(id);
      let object;
      try {
        object = await this.treeObject(id, false);
      } catch {
        continue; // a chunk (not an object) or a corrupt item: nothing below it
      }
      if (object.type === 'file') for (const c of object.chunks) seen.add(c.id);
      else for (const e of object.entries) if (e.hash !== undefined) stack.push(e.hash);
    }
    return seen;
  }

  /** Removes least recently used items not in `protectedIds` until the cache is within its cap. */
  async evict(protectedIds: ReadonlySet<string>): Promise<EvictionResult> {
    this.flushRecency();
    const usedAt = new Map(
      (
        this.options.db.prepare('SELECT id, used_at FROM chunk_use').all() as {
          id: string;
          used_at: number;
        }[]
      ).map((r) => [r.id, r.used_at]),
    );
    const items: { id: string; size: number; usedAt: number; whole: boolean }[] = [];
    let total = 0;
    for await (const id of this.store.list()) {
      const info = await stat(this.store.pathOf(id)).catch(() => null);
      if (!info) continue;
      total += info.size;
      items.push({ id, size: info.size, usedAt: usedAt.get(id) ?? 0, whole: false });
    }
    // A whole file shares its id (and recency) with its file object; both go or stay together.
    for (const file of this.whole.list()) {
      total += file.size;
      items.push({ ...file, usedAt: usedAt.get(file.id) ?? 0, whole: true });
    }
    items.sort((a, b) => a.usedAt - b.usedAt);
    const result: EvictionResult = { removed: 0, bytesRemoved: 0, bytesKept: total };
    const forget = this.options.db.prepare('DELETE FROM chunk_use WHERE id = ?');
    for (const item of items) {
      if (result.bytesKept <= this.options.maxBytes) break;
      if (protectedIds.has(item.id)) continue;
      if (item.whole ? this.removeWholeFile(item.id) : await this.store.remove(item.id)) {
        this.forget(item.id);
        forget.run(item.id);
        result.removed += 1;
        result.bytesRemoved += item.size;
        result.bytesKept -= item.size;
      }
    }
    this.storedBytes = result.bytesKept;
    return result;
  }

  private written(id: string, frameBytes: number): void {
    if (this.storedBytes !== null) this.storedBytes += frameBytes;
    this.touch(id);
  }

  private touch(id: string): void {
    // Strictly increasing, so that order survives several reads in one millisecond.
    this.lastTouch = Math.max(Date.now(), this.lastTouch + 1);
    this.touched.set(id, this.lastTouch);
  }

  /** `whole`: `id` names a whole file (removed if corrupt), not an item of the store. */
  private async read(
    id: string,
    get: () => Uint8Array | Promise<Uint8Array>,
    whole = false,
  ): Promise<Uint8Array> {
    try {
      const bytes = await get();
      this.touch(id);
      return bytes;
    } catch (error) {
      if (error instanceof FlotillaError && CORRUPTION.has(error.code)) {
        if (whole) this.removeWholeFile(id);
        else {
          this.forget(id);
          await this.store.remove(id).catch(() => false);
        }
        this.options.onCorrupt?.(id, error);
        throw new FlotillaError(
          error.code,
          `${error.message}; removed from the cache, it will be fetched again`,
          {
            details: { id, cache: this.options.dir },
            cause: error,
          },
        );
      }
      throw error;
    }
  }
}
