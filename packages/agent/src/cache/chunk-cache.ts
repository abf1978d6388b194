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
 *
 * This class is the cache's face (the store, tree objects held in memory, removal of corrupt
 * items, the running size); the other jobs are in their own files: recency (recency.ts), whole
 * files' chunks (whole-file-index.ts), what releases keep alive (reachable.ts), eviction
 * (eviction.ts).
 */
import { join } from 'node:path';
import { WeightedLru } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import { FsStore, parseObject } from '@flotilla/store';
import type { FileObject, FileStamp, ObjectSink, StoreReader, TreeObject } from '@flotilla/store';
import type { StateDatabase } from '../state/db.js';
import { evictLeastRecent, storedBytes } from './eviction.js';
import type { EvictionResult } from './eviction.js';
import { reachableIds } from './reachable.js';
import { Recency } from './recency.js';
import { WholeFileIndex } from './whole-file-index.js';
import { WholeFiles } from './whole-files.js';

export type { EvictionResult } from './eviction.js';

export interface ChunkCacheOptions {
  dir: string;
  db: StateDatabase;
  /** Size cap in bytes of stored frames; eviction brings the cache below it. */
  maxBytes: number;
  /** Reports items found corrupt (and removed). */
  onCorrupt?: (id: string, error: FlotillaError) => void;
  /** Reports a deferred recency flush that failed (it is tried again at the next flush). */
  onFlushError?: (error: unknown) => void;
  /**
   * A garbage collection: a young-generation one after every `collectEveryBytes` of chunks read or
   * stored, a full one after every eighth (default: Node's `gc`, where `--expose-gc` exposes it, as
   * the bundle's launcher does).
   */
  collectGarbage?: (type: 'minor' | 'major') => void;
  /** Default 4 MiB. */
  collectEveryBytes?: number;
}

/**
 * Chunk bytes passed through (read or stored) between two collections while an update runs. Each
 * chunk leaves several dead buffers (read, decompressed, compressed, framed) whose memory is
 * outside V8's heap: V8 frees it only when it collects their small objects, and it counts little
 * towards starting a collection, so the dead buffers of tens of MB could wait for the next one
 * (bench/README.md "agent footprint"). A young-generation collection takes well under a
 * millisecond, a full one a few (2 ms for a 24 MB heap here); every eighth is full, for buffers
 * that outlived a young one.
 */
const COLLECT_EVERY_BYTES = 4 * 1024 * 1024;
const MAJOR_EVERY = 8;

function nodeGc(): ((type: 'minor' | 'major') => void) | undefined {
  const gc = (globalThis as { gc?: (options: { type: 'minor' | 'major' }) => void }).gc;
  return gc === undefined ? undefined : (type) => gc({ type });
}

const CORRUPTION = new Set(['FLT_HASH_MISMATCH', 'FLT_CHUNK_ENCODING_INVALID', 'FLT_LIMIT_EXCEEDED']);

/** Tree objects kept in memory (bytes), and the largest one kept. */
const OBJECT_MEMO_BYTES = 64 * 1024 * 1024;
const OBJECT_MEMO_MAX_ITEM = 1024 * 1024;
/** Whole files from this size on are written back as soon as they are in (WholeFiles.writeBack). */
const WRITE_BACK_MIN = 1024 * 1024;

/**
 * Told of an item stored: its id, and its content where the store had it at hand (a chunk or a
 * frame, verified against its id; not the chunks of a whole file adopted).
 */
export type StoredListener = (id: string, content?: Uint8Array) => void;

export class ChunkCache implements StoreReader, ObjectSink {
  private readonly recency: Recency;
  private readonly wholeFiles: WholeFileIndex;
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
  /** Chunk bytes read or stored since the last collection. */
  private passedBytes = 0;
  private collections = 0;
  private readonly collectGarbage: ((type: 'minor' | 'major') => void) | undefined;
  private readonly collectEveryBytes: number;
  /** Told of each item stored (and of each chunk of a whole file adopted): `onStored`. */
  private readonly storedListeners = new Set<StoredListener>();

  private constructor(
    readonly store: FsStore,
    readonly whole: WholeFiles,
    private readonly options: ChunkCacheOptions,
  ) {
    this.recency = new Recency(options.db, options.onFlushError);
    this.wholeFiles = new WholeFileIndex(whole, (id) => this.treeObject(id, false));
    this.collectGarbage = options.collectGarbage ?? nodeGc();
    this.collectEveryBytes = options.collectEveryBytes ?? COLLECT_EVERY_BYTES;
  }

  /** Counts chunk bytes through the cache; collects garbage every `collectEveryBytes`. */
  private passed(bytes: number): void {
    if (this.collectGarbage === undefined) return;
    this.passedBytes += bytes;
    if (this.passedBytes < this.collectEveryBytes) return;
    this.passedBytes = 0;
    this.collections++;
    this.collectGarbage(this.collections % MAJOR_EVERY === 0 ? 'major' : 'minor');
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
    // A copy: the bytes may be a view of a larger buffer (a pack's piece) that would stay alive with them.
    if (!this.objects.has(id)) this.objects.set(id, { bytes: Buffer.from(bytes) });
  }

  private forget(id: string): void {
    this.objects.delete(id);
  }

  async getChunk(id: string): Promise<Uint8Array> {
    const bytes = await this.chunk(id);
    this.passed(bytes.length);
    return bytes;
  }

  private async chunk(id: string): Promise<Uint8Array> {
    try {
      return await this.read(id, () => this.store.getChunk(id));
    } catch (error) {
      if (!(error instanceof FlotillaError && error.code === 'FLT_OBJECT_MISSING')) throw error;
      const at = await this.wholeFiles.locate(id);
      if (at === undefined) throw error;
      return this.read(at.file, () => this.whole.readChunk(at.file, id, at.offset, at.size), true);
    }
  }

  /** Whether the file object `id` is held as a whole file (then its chunks need no fetching). */
  hasWholeFile(id: string): boolean {
    return this.wholeFiles.has(id);
  }

  /** The path of the whole file `id`, if held (unverified: whoever uses it verifies it). */
  wholeFilePath(id: string): string | undefined {
    if (!this.wholeFiles.has(id)) return undefined;
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
    // Large files only: small ones cost the syncfs little, and one pool thread each.
    if (result.written >= WRITE_BACK_MIN) this.whole.writeBack(id);
    this.wholeFiles.add(id, file);
    this.written(id, result.written);
    // Its chunks are readable now (`getChunk` finds them in the whole file).
    if (this.storedListeners.size > 0) for (const c of file.chunks) this.stored(c.id);
  }

  /**
   * Calls `listener` with the id of each item stored from now on (chunks, objects, frames, and the
   * chunks of each whole file adopted), until the returned function is called: a reader that
   * begins before the fetch ends (tree-files.ts) waits for what it lacks this way.
   */
  onStored(listener: StoredListener): () => void {
    this.storedListeners.add(listener);
    return () => this.storedListeners.delete(listener);
  }

  private stored(id: string, content?: Uint8Array): void {
    for (const listener of this.storedListeners) listener(id, content);
  }

  async putChunk(id: string, bytes: Uint8Array): Promise<void> {
    this.written(id, await this.store.putChunk(id, bytes), bytes);
    this.passed(bytes.length);
  }

  async putObject(id: string, bytes: Uint8Array): Promise<void> {
    this.written(id, await this.store.putObject(id, bytes));
    this.remember(id, bytes);
  }

  /** Stores a frame received from the server; decoded and verified against `id` first. */
  async putFrame(id: string, frame: Uint8Array): Promise<void> {
    const { written, content } = await this.store.putFrameDecoded(id, frame);
    this.written(id, written, content);
    this.passed(frame.length);
  }

  async remove(id: string): Promise<boolean> {
    this.forget(id);
    this.storedBytes = null; // its size is unknown here: scan again when next asked
    const whole = this.wholeFiles.has(id) && this.wholeFiles.remove(id);
    return (await this.store.remove(id)) || whole;
  }

  /**
   * Whether the cache holds more than its cap. The first call scans the directory; after that a
   * running count answers, so an update under the cap skips eviction (and the walk over every
   * installed release that working out what to protect takes).
   */
  async overCap(): Promise<boolean> {
    this.storedBytes ??= await storedBytes(this.store, this.wholeFiles);
    return this.storedBytes > this.options.maxBytes;
  }

  /** Flushes recency a few seconds from now, off the update's path (recency.ts). */
  flushRecencySoon(delayMs = 5000): void {
    this.recency.flushSoon(delayMs);
  }

  /** Writes recency kept in memory to state.db. */
  flushRecency(): void {
    this.recency.flush();
  }

  /** Every object and chunk id reachable from `roots` that the cache holds (what it lacks is left out). */
  reachable(roots: Iterable<string>): Promise<Set<string>> {
    return reachableIds(roots, {
      // An object held in memory was read from (or written to) the store: no stat needed (one per
      // object of every installed release was most of this walk).
      holds: async (id) => this.objects.has(id) || (await this.store.has(id)),
      objectOf: (id) => this.treeObject(id, false),
    });
  }

  /** Removes least recently used items not in `protectedIds` until the cache is within its cap. */
  async evict(protectedIds: ReadonlySet<string>): Promise<EvictionResult> {
    const result = await evictLeastRecent({
      store: this.store,
      whole: this.wholeFiles,
      recency: this.recency,
      maxBytes: this.options.maxBytes,
      protectedIds,
      onRemoved: (id) => this.forget(id),
    });
    this.storedBytes = result.bytesKept;
    return result;
  }

  private written(id: string, frameBytes: number, content?: Uint8Array): void {
    if (this.storedBytes !== null) this.storedBytes += frameBytes;
    this.touch(id);
    if (this.storedListeners.size > 0) this.stored(id, content);
  }

  private touch(id: string): void {
    this.recency.touch(id);
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
        if (whole) this.wholeFiles.remove(id);
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
