/**
 * A least-recently-used map bounded by the total weight of its values (bytes, objects…) and
 * optionally by its number of entries, on lru-cache: the server's in-memory caches of the object
 * routes (delta answers, parsed file objects, tree closures, access sets), its prepared-statement
 * cache, and the agent's memo of verified tree objects are all this.
 */
import { LRUCache } from 'lru-cache';

export interface WeightedLruOptions<V> {
  /** Weight of a value (a non-negative number; counted as at least 1). */
  weigh: (value: V) => number;
  maxWeight: number;
  /** A value heavier than this is not kept at all (default `maxWeight`). */
  maxItemWeight?: number;
  maxEntries?: number;
}

// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- lru-cache keys and values are non-nullish
export class WeightedLru<K extends {}, V extends {}> {
  private readonly cache: LRUCache<K, V>;

  constructor(options: WeightedLruOptions<V>) {
    // lru-cache wants positive integer sizes: a weight rounds up, and an empty value counts 1.
    const weigh = (value: V) => Math.max(1, Math.ceil(options.weigh(value)));
    this.cache = new LRUCache<K, V>({
      maxSize: Math.max(1, options.maxWeight),
      maxEntrySize: Math.max(1, options.maxItemWeight ?? options.maxWeight),
      sizeCalculation: weigh,
      ...(options.maxEntries !== undefined ? { max: options.maxEntries } : {}),
    });
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    return this.cache.get(key);
  }

  /** The value, without touching recency. */
  peek(key: K): V | undefined {
    return this.cache.peek(key);
  }

  /** Keeps `value` as the most recently used, dropping the least recently used beyond the bounds. */
  set(key: K, value: V): void {
    this.cache.delete(key);
    this.cache.set(key, value);
  }

  delete(key: K): void {
    this.cache.delete(key);
  }

  has(key: K): boolean {
    return this.cache.has(key);
  }

  /** Keys, least recently used first, without touching recency. */
  keys(): Generator<K> {
    return this.cache.rkeys();
  }

  /** Values, least recently used first, without touching recency. */
  *values(): Generator<V> {
    for (const value of this.cache.rvalues()) if (value !== undefined) yield value;
  }

  get size(): number {
    return this.cache.size;
  }

  /** Total weight of the values held. */
  get weight(): number {
    return this.cache.calculatedSize;
  }
}
