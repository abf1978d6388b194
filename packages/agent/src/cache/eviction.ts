/**
 * Bringing the cache under its size cap: least recently used first, never an item a current or
 * previous release needs. A whole file shares its id (and recency) with its file object; both go
 * or stay together.
 */
import { stat } from 'node:fs/promises';
import type { FsStore } from '@flotilla/store';
import type { Recency } from './recency.js';
import type { WholeFileIndex } from './whole-file-index.js';

export interface EvictionResult {
  removed: number;
  bytesRemoved: number;
  bytesKept: number;
}

export interface EvictionInput {
  store: FsStore;
  whole: WholeFileIndex;
  recency: Recency;
  /** Size cap in bytes of stored frames and whole files. */
  maxBytes: number;
  protectedIds: ReadonlySet<string>;
  /** Told each id removed (the cache drops what it holds in memory of it). */
  onRemoved: (id: string) => void;
}

/** Bytes the cache holds on disk: stored frames and whole files. */
export async function storedBytes(store: FsStore, whole: WholeFileIndex): Promise<number> {
  let total = 0;
  for await (const id of store.list()) total += (await stat(store.pathOf(id)).catch(() => null))?.size ?? 0;
  for (const file of whole.files.list()) total += file.size;
  return total;
}

/** Removes least recently used items not in `protectedIds` until the cache is within `maxBytes`. */
export async function evictLeastRecent(input: EvictionInput): Promise<EvictionResult> {
  const { store, whole, recency } = input;
  const usedAt = recency.usedAt();
  const items: { id: string; size: number; usedAt: number; whole: boolean }[] = [];
  let total = 0;
  for await (const id of store.list()) {
    const info = await stat(store.pathOf(id)).catch(() => null);
    if (!info) continue;
    total += info.size;
    items.push({ id, size: info.size, usedAt: usedAt.get(id) ?? 0, whole: false });
  }
  for (const file of whole.files.list()) {
    total += file.size;
    items.push({ ...file, usedAt: usedAt.get(file.id) ?? 0, whole: true });
  }
  items.sort((a, b) => a.usedAt - b.usedAt);
  const result: EvictionResult = { removed: 0, bytesRemoved: 0, bytesKept: total };
  for (const item of items) {
    if (result.bytesKept <= input.maxBytes) break;
    if (input.protectedIds.has(item.id)) continue;
    if (item.whole ? whole.remove(item.id) : await store.remove(item.id)) {
      input.onRemoved(item.id);
      recency.forget(item.id);
      result.removed += 1;
      result.bytesRemoved += item.size;
      result.bytesKept -= item.size;
    }
  }
  return result;
}
