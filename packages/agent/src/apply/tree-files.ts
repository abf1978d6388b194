/**
 * A release's files read out of the chunk cache, by path (`TreeFiles`), for a runtime that begins
 * its work before the tree is staged (`Runtime.prepare`; docker: `docker load` of the release's
 * images while the fetch brings the changed chunks and the stage step writes the same layers to
 * disk). Every object is checked against its id; `read` checks every chunk against its hash, as
 * staging does. The pieces of `open` are not hashed chunk by chunk (their reader hashes the whole
 * file against a signed digest: a docker layer against its diff id), which halves the hashing of a
 * large layer read beside the staging; for the same reason they may come from the installed
 * release's file at the same path (`base`), read where it holds the same chunks (no decompression),
 * a corrupt one failing the reader's check as a corrupt chunk would.
 *
 * With `arrivals`, the reads may begin before the fetch ends (once the tree's objects are in the
 * cache): a chunk the cache lacks is waited for until the fetch stores it.
 */
import { constants } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { readAhead } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import { contentId } from '@flotilla/store';
import type { FileObject } from '@flotilla/store';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { TreeFile, TreeFiles } from '../runtimes/runtime.js';

/** Pieces handed on are gathered up to this size (fewer hops through the load's streams). */
const PIECE_BYTES = 1024 * 1024;
/** The content of fetched chunks kept in memory for the reads (FetchArrivals.keep), at most. */
const KEEP_ARRIVED_BYTES = 16 * 1024 * 1024;
/** Buffers a tree's reads keep for reuse (`PieceBuffers`): the read-ahead window and some more. */
const KEPT_BUFFERS = 16;

/**
 * The buffers that reads of installed files fill, taken back once their reader is done with them
 * (`TreeFile.recycle`) and filled again. A 64 MiB layer read into fresh buffers made V8 collect
 * garbage whole every ~0.1 s while it streamed (external memory drives its heuristics): a quarter
 * of the agent's time during an image update (bench/README.md "containers").
 */
class PieceBuffers {
  private readonly free: Buffer[] = [];
  /** The memory of the buffers handed out and not yet taken back. */
  private readonly lent = new WeakSet<ArrayBufferLike>();

  /** A buffer of `length` bytes (at most PIECE_BYTES), kept or new. */
  take(length: number): Buffer {
    if (length > PIECE_BYTES) return Buffer.allocUnsafe(length);
    const buffer = this.free.pop() ?? Buffer.allocUnsafeSlow(PIECE_BYTES);
    this.lent.add(buffer.buffer);
    return buffer.subarray(0, length);
  }

  /** Takes back the buffer `piece` is a view of, if it is one handed out (once; others are ignored). */
  give(piece: Uint8Array): void {
    if (!this.lent.delete(piece.buffer)) return;
    if (this.free.length < KEPT_BUFFERS) this.free.push(Buffer.from(piece.buffer, 0, PIECE_BYTES));
  }
}

/**
 * The chunks a fetch is still bringing into the cache: a reader that lacks one waits until the
 * cache stores it, until the fetch ends (then it looks once more, and a chunk still missing is the
 * cache's FLT_OBJECT_MISSING), or until the fetch fails (that error).
 */
export class FetchArrivals {
  private readonly waiting = new Map<string, Set<() => void>>();
  private ended: { error: Error } | null = null;
  private over = false;
  private readonly unwatch: () => void;
  /** The content of chunks stored, kept (`keep`) for a reader to `take` instead of reading it back. */
  private readonly kept = new Map<string, Uint8Array>();
  private keptBytes = 0;
  private keepBytes = 0;

  constructor(cache: ChunkCache) {
    this.unwatch = cache.onStored((id, content) => {
      if (content !== undefined) this.hold(id, content);
      this.wake(id);
    });
  }

  /**
   * From now until the fetch ends, keeps the content of the chunks stored, up to `bytes`, for a
   * reader to take (a reader of the tree's files: cacheTreeFiles). Taken from memory, a chunk is
   * not read back from the cache, decompressed and hashed again: a fetch stores what the stream
   * to the engine reads next.
   */
  keep(bytes: number): void {
    if (!this.over) this.keepBytes = Math.max(this.keepBytes, bytes);
  }

  /** The content of chunk `id` kept since it was stored (verified by the store), once; else undefined. */
  take(id: string): Uint8Array | undefined {
    const content = this.kept.get(id);
    if (content === undefined) return undefined;
    this.kept.delete(id);
    this.keptBytes -= content.byteLength;
    return content;
  }

  private hold(id: string, content: Uint8Array): void {
    if (this.kept.has(id) || this.keptBytes + content.byteLength > this.keepBytes) return;
    this.kept.set(id, content);
    this.keptBytes += content.byteLength;
  }

  /**
   * Begins waiting for `id` (before the caller looks for it, so no arrival is missed); undefined
   * once the fetch is over. `arrived` resolves when the item is stored or the fetch ends, and
   * rejects with the fetch's error when it fails.
   */
  expect(id: string): { arrived: Promise<void>; cancel: () => void } | undefined {
    if (this.ended !== null) return { arrived: Promise.reject(this.ended.error), cancel: () => undefined };
    if (this.over) return undefined;
    let wake!: () => void;
    const arrived = new Promise<void>((resolve, reject) => {
      wake = () => (this.ended === null ? resolve() : reject(this.ended.error));
    });
    arrived.catch(() => undefined); // awaited only when the item is missing
    let set = this.waiting.get(id);
    if (set === undefined) this.waiting.set(id, (set = new Set()));
    set.add(wake);
    return { arrived, cancel: () => set.delete(wake) };
  }

  /** The fetch ended: with `error`, the waiting readers fail with it; without, they look once more. */
  end(error?: unknown): void {
    if (this.over) return;
    this.over = true;
    this.kept.clear();
    this.keptBytes = 0;
    this.keepBytes = 0;
    if (error !== undefined)
      this.ended = {
        error: error instanceof Error ? error : new Error('the fetch failed', { cause: error }),
      };
    this.unwatch();
    const all = [...this.waiting.values()];
    this.waiting.clear();
    for (const set of all) for (const wake of set) wake();
  }

  private wake(id: string): void {
    const set = this.waiting.get(id);
    if (set === undefined) return;
    this.waiting.delete(id);
    for (const wake of set) wake();
  }
}

/**
 * The reads of a tree's files under way (iterations of `open(path).pieces()`, and what a runtime
 * announces with `TreeFiles.reading`). Staging holds its
 * rewrite of the changed files until they are over (executors.ts), so that the two do not split
 * a small machine while the runtime streams the same files to the engine: on 2 cores the stage
 * beside the engine's pull stretched the stream of a 64 MiB layer from ~0.5 s to ~1 s.
 */
export class TreeReads {
  private active = 0;
  private waiting: (() => void)[] = [];

  /** A read begins; the function returned ends it (once). */
  begin(): () => void {
    this.active++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.active > 0) return;
      const waiting = this.waiting;
      this.waiting = [];
      for (const wake of waiting) wake();
    };
  }

  /** Resolves once no read is under way (at once if none is), or after `maxMs` whatever happens. */
  over(maxMs: number): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, maxMs);
      this.waiting.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

export interface CacheTreeFilesOptions {
  /** Chunks still arriving: reads wait for them (`FetchArrivals`). */
  arrivals?: FetchArrivals;
  /** The installed release (its root and directory): `open` reads the chunks its same-path file holds from there. */
  base?: { root: string; dir: string } | null;
  /** Counts the reads under way. */
  reads?: TreeReads;
}

export function cacheTreeFiles(
  cache: ChunkCache,
  root: string,
  options: CacheTreeFilesOptions = {},
): TreeFiles {
  const { arrivals } = options;
  const buffers = new PieceBuffers();
  arrivals?.keep(KEEP_ARRIVED_BYTES);
  const fileAt = async (treeRoot: string, path: string): Promise<FileObject | null> => {
    let id = treeRoot;
    const names = path.split('/');
    for (const [i, name] of names.entries()) {
      const dir = await cache.getTreeObject(id);
      if (dir.type !== 'dir') return null;
      const entry = dir.entries.find((e) => e.name === name);
      const last = i === names.length - 1;
      if (entry?.hash === undefined || entry.kind !== (last ? 'file' : 'dir')) return null;
      id = entry.hash;
    }
    const file = await cache.getTreeObject(id);
    return file.type === 'file' ? file : null;
  };
  const chunk = async (id: string): Promise<Uint8Array> => {
    for (;;) {
      const kept = arrivals?.take(id);
      if (kept !== undefined) return kept;
      const wait = arrivals?.expect(id);
      try {
        const bytes = await cache.getChunk(id);
        wait?.cancel();
        return bytes;
      } catch (error) {
        if (wait === undefined || !(error instanceof FlotillaError && error.code === 'FLT_OBJECT_MISSING')) {
          wait?.cancel();
          throw error;
        }
        await wait.arrived;
      }
    }
  };
  const open = async (path: string): Promise<TreeFile | null> => {
    const file = await fileAt(root, path).catch(() => null);
    if (file === null) return null;
    const base = options.base ? await openBase(options.base, path) : null;
    return {
      size: file.size,
      pieces: () => counted(piecesOf(chunk, file, base, buffers), options.reads),
      recycle: (piece) => buffers.give(piece),
      close: () => base?.handle.close() ?? Promise.resolve(),
    };
  };
  /** The installed file at `path` and where its chunks start; null when there is none (or it cannot be opened). */
  const openBase = async (base: { root: string; dir: string }, path: string): Promise<BaseFile | null> => {
    const old = await fileAt(base.root, path).catch(() => null);
    if (old === null) return null;
    const handle = await openFile(`${base.dir}/${path}`, constants.O_RDONLY | constants.O_NOFOLLOW).catch(
      () => null,
    );
    if (handle === null) return null;
    const at = new Map<string, number[]>();
    let offset = 0;
    for (const c of old.chunks) {
      const offsets = at.get(c.id);
      if (offsets === undefined) at.set(c.id, [offset]);
      else offsets.push(offset);
      offset += c.size;
    }
    return { handle, at };
  };
  return {
    open,
    reading: () => options.reads?.begin() ?? (() => undefined),
    read: async (path) => {
      const file = await fileAt(root, path).catch(() => null);
      if (file === null) return null;
      const parts: Uint8Array[] = [];
      for (const c of file.chunks) {
        const bytes = await chunk(c.id);
        if (bytes.length !== c.size || contentId(bytes) !== c.id)
          throw chunkMismatch(c.id, c.size, bytes.length);
        parts.push(bytes);
      }
      const whole = Buffer.concat(parts);
      if (whole.length !== file.size)
        throw new FlotillaError(
          'FLT_HASH_MISMATCH',
          `the chunks add up to ${whole.length} bytes, not ${file.size}`,
        );
      return whole;
    },
  };
}

interface BaseFile {
  handle: FileHandle;
  /** Offsets in the installed file of each chunk id it holds (ascending; repeated content has several). */
  at: Map<string, number[]>;
}

function chunkMismatch(id: string, size: number, got: number): FlotillaError {
  return new FlotillaError('FLT_HASH_MISMATCH', `chunk ${id} does not match its hash or size`, {
    details: { chunk: id, size, got },
  });
}

/** A stretch of the file: bytes of the installed file, or one chunk from the cache. */
type Segment = { from: number; length: number } | { id: string; size: number };

/**
 * The file's chunks in order, runs the installed file holds contiguously merged (at most
 * PIECE_BYTES each, so that a run fits a kept buffer: PieceBuffers). A chunk the installed file holds at several offsets (repeated content) is
 * read from the one that continues the run, so that a file much like the installed one is read
 * in long sequential runs rather than broken at every repeat.
 */
function segmentsOf(file: FileObject, base: BaseFile | null): Segment[] {
  const out: Segment[] = [];
  for (const c of file.chunks) {
    const offsets = base?.at.get(c.id);
    if (offsets === undefined) {
      out.push({ id: c.id, size: c.size });
      continue;
    }
    const last = out.at(-1);
    const run = last !== undefined && 'from' in last ? last : undefined;
    const end = run === undefined ? -1 : run.from + run.length;
    const continues = offsets.includes(end);
    if (run !== undefined && continues && run.length + c.size <= PIECE_BYTES) run.length += c.size;
    else out.push({ from: continues ? end : offsets[0]!, length: c.size });
  }
  return out;
}

/** How far the reads of a file run ahead of its reader, in bytes (node-kit's `readAhead`). */
const READ_AHEAD_BYTES = 8 * 1024 * 1024;

/** `source`, counted in `reads` from its first piece asked for until it ends (or is given up). */
async function* counted(
  source: AsyncGenerator<Uint8Array>,
  reads: TreeReads | undefined,
): AsyncGenerator<Uint8Array> {
  const end = reads?.begin();
  try {
    yield* source;
  } finally {
    end?.();
  }
}

/** Reads `segment`: bytes of the installed file, or a chunk (checked against its size). */
async function readSegment(
  segment: Segment,
  chunk: (id: string) => Promise<Uint8Array>,
  base: BaseFile | null,
  buffers: PieceBuffers,
): Promise<Uint8Array> {
  if (!('from' in segment)) {
    const bytes = await chunk(segment.id);
    if (bytes.length !== segment.size) throw chunkMismatch(segment.id, segment.size, bytes.length);
    return bytes;
  }
  const bytes = buffers.take(segment.length);
  let got = 0;
  while (got < segment.length) {
    const { bytesRead } = await base!.handle.read(bytes, got, segment.length - got, segment.from + got);
    if (bytesRead === 0)
      throw new FlotillaError('FLT_HASH_MISMATCH', `the installed file is shorter than its chunks`, {
        details: { offset: segment.from + got },
      });
    got += bytesRead;
  }
  return bytes;
}

async function* piecesOf(
  chunk: (id: string) => Promise<Uint8Array>,
  file: FileObject,
  base: BaseFile | null,
  buffers: PieceBuffers,
): AsyncGenerator<Uint8Array> {
  const reads = readAhead(
    segmentsOf(file, base),
    (segment) => readSegment(segment, chunk, base, buffers),
    READ_AHEAD_BYTES,
    (segment) => ('from' in segment ? segment.length : segment.size),
  );
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  let offset = 0;
  const release = (): Uint8Array => {
    const piece = held.length === 1 ? held[0]! : Buffer.concat(held);
    // Copied together: the buffers can be filled again.
    if (held.length > 1) for (const bytes of held) buffers.give(bytes);
    held = [];
    heldBytes = 0;
    return piece;
  };
  for await (const bytes of reads) {
    if (offset + bytes.length > file.size)
      throw new FlotillaError('FLT_HASH_MISMATCH', `the chunks add up to more than ${file.size} bytes`);
    offset += bytes.length;
    // A read of the installed file is handed on as it is (copying 64 MiB of pieces together cost
    // ~120 ms of a contended update); only chunks from the cache are gathered into larger pieces.
    if (bytes.length >= PIECE_BYTES / 4) {
      if (held.length > 0) yield release();
      yield bytes;
      continue;
    }
    held.push(bytes);
    heldBytes += bytes.length;
    if (heldBytes >= PIECE_BYTES) yield release();
  }
  if (offset !== file.size)
    throw new FlotillaError('FLT_HASH_MISMATCH', `the chunks add up to ${offset} bytes, not ${file.size}`);
  if (held.length > 0) yield release();
}
