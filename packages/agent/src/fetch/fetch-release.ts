/**
 * Brings every object and chunk of a release into the cache, fetching only what it lacks: walks the
 * new tree from its root, one level per round trip, skipping subtrees that an installed release
 * already holds (protected in the cache). Checks the disk before downloading chunks.
 */
import { parseObject } from '@flotilla/store';
import type { ChunkCache } from '../cache/chunk-cache.js';
import type { DiskProbe } from './disk.js';
import { ensureRoom } from './disk.js';
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
  signal: AbortSignal;
  onProgress?: (progress: ReleaseFetchProgress) => void;
}

export interface FetchReleaseResult {
  wireBytes: number;
  chunksFetched: number;
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
  let treeBytes = 0;
  let level = [root];
  const visited = new Set<string>();
  while (level.length > 0) {
    const wanted = level.filter((id) => !options.installed.has(id));
    const missing = await cache.missing(wanted);
    if (missing.length > 0) await fetcher.fetch(missing, cache, { signal, onWireBytes });
    const next: string[] = [];
    for (const id of level) {
      if (visited.has(id)) continue;
      visited.add(id);
      if (options.installed.has(id)) {
        treeBytes += await subtreeBytes(cache, id);
        continue;
      }
      const object = parseObject(await cache.getObject(id), { expectedId: id });
      if (object.type === 'file') {
        treeBytes += object.size;
        for (const c of object.chunks) chunkSizes.set(c.id, c.size);
      } else {
        for (const entry of object.entries) if (entry.hash !== undefined) next.push(entry.hash);
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
  let bytesDone = 0;
  const report = () => options.onProgress?.({ bytesDone, bytesTotal, wireBytes });
  report();
  if (missingChunks.length > 0) {
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
    await fetcher.fetch(missingChunks, counting, { signal, onWireBytes });
  }
  cache.flushRecency();
  return { wireBytes, chunksFetched: missingChunks.length, treeBytes };
}

async function subtreeBytes(cache: ChunkCache, id: string): Promise<number> {
  const object = parseObject(await cache.getObject(id), { expectedId: id });
  if (object.type === 'file') return object.size;
  let total = 0;
  for (const entry of object.entries)
    if (entry.hash !== undefined) total += await subtreeBytes(cache, entry.hash);
  return total;
}
