/**
 * Brings every object and chunk of a release into the cache, fetching only what it lacks: asks the
 * server for the new tree's objects minus the installed releases' in one request, then walks the
 * new tree from its root (one level per round trip for whatever that left out), skipping subtrees
 * that an installed release already holds (protected in the cache). Checks the disk before
 * downloading chunks. Files that changed at a path of the release the app runs come as deltas
 * against it where the server offers them (delta-fetch.ts), and are kept whole; every other missing
 * chunk comes in packs. Nothing is fsynced here: the stage step's syncfs makes the cache durable
 * with the release (chunk-cache.ts).
 */
import { DEFAULT_MAX_DELTA_FILE_BYTES } from '@flotilla/store';
import type { FileObject } from '@flotilla/store';
import type { ChunkCache } from '../cache/chunk-cache.js';
import { fetchByDeltas } from './delta-fetch.js';
import { RebuildPool } from './rebuild-pool.js';
import type { DeltaBase, WantedFile } from './delta-fetch.js';
import type { DiskProbe } from './disk.js';
import { ensureRoom } from './disk.js';
import { canFetchDeltas, canFetchTrees } from './fetcher.js';
import type { ObjectFetcher } from './fetcher.js';

export interface ReleaseFetchProgress {
  bytesDone: number;
  bytesTotal: number;
  wireBytes: number;
}

export interface FetchReleaseOptions {
  cache: ChunkCache;
  fetcher: ObjectFetcher;
  disk: DiskProbe;
  dataDir: string;
  /** Ids of installed releases' objects: subtrees to skip (they and their chunks are in the cache). */
  installed: ReadonlySet<string>;
  /**
   * Roots of the installed releases: the server is first asked for the new tree's objects minus
   * theirs in one request (`ObjectRoutes.treePack`), so the walk below finds them in the cache.
   */
  installedRoots?: readonly string[];
  /** Told why such a one-request tree fetch was given up (the walk then fetches what is left). */
  onTreeFetchFailed?: (error: unknown) => void;
  signal: AbortSignal;
  onProgress?: (progress: ReleaseFetchProgress) => void;
  /** The release this app runs: changed files are asked for as deltas against it. */
  deltaBase?: DeltaBase | null;
  /**
   * Staging hardlinks what installed releases hold, so their subtrees need no room on disk and
   * are not counted (counting reads every object in them).
   */
  installedNeedsNoRoom?: boolean;
  /** Files larger than this are never asked for as deltas (default 128 MiB). */
  maxDeltaFileBytes?: number;
  /** Told when a delta is refused or fails (the chunks are then fetched in packs). */
  onDeltaFailed?: (target: string, error: unknown) => void;
  /**
   * The worker threads that rebuild files from deltas while staging goes on (rebuild-pool.ts);
   * without one, files are rebuilt on this thread as their deltas arrive.
   */
  rebuildPool?: RebuildPool;
  /**
   * Called once every object of the tree is in the cache and the disk has room, before the files'
   * contents are fetched: staging can begin (the agent links unchanged files meanwhile).
   */
  onTreeReady?: () => void;
}

export interface FetchReleaseResult {
  wireBytes: number;
  chunksFetched: number;
  /** Files rebuilt from deltas, and pairs the server declined (or whose delta failed). */
  deltaFiles: number;
  deltaDeclined: number;
  /** Size of the materialized tree. */
  treeBytes: number;
}

export async function fetchReleaseObjects(
  root: string,
  options: FetchReleaseOptions,
): Promise<FetchReleaseResult> {
  const { cache, fetcher, signal } = options;
  let wireBytes = 0;
  const onWireBytes = (n: number) => {
    wireBytes += n;
  };
  const chunkSizes = new Map<string, number>();
  const files: WantedFile[] = [];
  let treeBytes = 0;
  let level: { id: string; path: string }[] = [{ id: root, path: '' }];
  const visited = new Set<string>();
  if (canFetchTrees(fetcher))
    await fetcher.fetchTree(root, options.installedRoots ?? [], cache, {
      signal,
      onWireBytes,
      ...(options.onTreeFetchFailed && { onFallback: options.onTreeFetchFailed }),
    });
  while (level.length > 0) {
    const wanted = level.map((l) => l.id).filter((id) => !options.installed.has(id));
    const missing = await cache.missing(wanted);
    if (missing.length > 0) await fetcher.fetch(missing, cache, { signal, onWireBytes });
    const next: { id: string; path: string }[] = [];
    for (const { id, path } of level) {
      if (visited.has(id)) continue;
      visited.add(id);
      if (options.installed.has(id)) {
        if (!options.installedNeedsNoRoom) treeBytes += await subtreeBytes(cache, id);
        continue;
      }
      const object = await cache.getTreeObject(id);
      if (object.type === 'file') {
        treeBytes += object.size;
        // A file kept whole (rebuilt from a delta before) needs none of its chunks.
        if (cache.hasWholeFile(id)) continue;
        for (const c of object.chunks) chunkSizes.set(c.id, c.size);
        files.push({ id, file: object, path });
      } else {
        for (const entry of object.entries)
          if (entry.hash !== undefined)
            next.push({ id: entry.hash, path: path === '' ? entry.name : `${path}/${entry.name}` });
      }
    }
    level = next;
  }
  const missingChunks = await cache.missing(chunkSizes.keys());
  const bytesTotal = missingChunks.reduce((sum, id) => sum + (chunkSizes.get(id) ?? 0), 0);
  await ensureRoom(
    options.disk,
    options.dataDir,
    bytesTotal + treeBytes,
    `the update (${missingChunks.length} chunks to fetch, ${treeBytes} bytes to install)`,
  );
  options.onTreeReady?.();
  let bytesDone = 0;
  const report = () => options.onProgress?.({ bytesDone, bytesTotal, wireBytes });
  report();
  const left = new Set(missingChunks);
  let deltaFiles = 0;
  let deltaDeclined = 0;
  if (left.size > 0 && options.deltaBase && canFetchDeltas(fetcher)) {
    const pool = options.rebuildPool ?? new RebuildPool(0);
    const delta = await fetchByDeltas(
      files.filter((f) => lacksChunks(f.file, left)),
      {
        cache,
        fetcher,
        base: options.deltaBase,
        missing: left,
        maxFileBytes: options.maxDeltaFileBytes ?? DEFAULT_MAX_DELTA_FILE_BYTES,
        request: { signal, onWireBytes },
        onChunkStored: (_id, size) => {
          bytesDone += size;
          report();
        },
        pool,
        ...(options.onDeltaFailed && { onDeltaFailed: options.onDeltaFailed }),
      },
    ).finally(() => pool.release());
    deltaFiles = delta.rebuilt;
    deltaDeclined = delta.declined;
  }
  if (left.size > 0) {
    const counting = {
      putChunk: async (id: string, bytes: Uint8Array) => {
        await cache.putChunk(id, bytes);
        bytesDone += bytes.length;
        report();
      },
      putFrame: async (id: string, frame: Uint8Array) => {
        await cache.putFrame(id, frame);
        bytesDone += chunkSizes.get(id) ?? 0;
        report();
      },
    };
    await fetcher.fetch([...left], counting, { signal, onWireBytes });
  }
  cache.flushRecencySoon();
  return { wireBytes, chunksFetched: missingChunks.length, deltaFiles, deltaDeclined, treeBytes };
}

function lacksChunks(file: FileObject, missing: ReadonlySet<string>): boolean {
  return file.chunks.some((c) => missing.has(c.id));
}

async function subtreeBytes(cache: ChunkCache, id: string): Promise<number> {
  const object = await cache.getTreeObject(id);
  if (object.type === 'file') return object.size;
  let total = 0;
  for (const entry of object.entries)
    if (entry.hash !== undefined) total += await subtreeBytes(cache, entry.hash);
  return total;
}
