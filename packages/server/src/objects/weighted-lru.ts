/**
 * A least-recently-used map bounded by the total weight of its values (bytes, objects…) and
 * optionally by its number of entries: the in-memory caches of the object routes (delta answers,
 * parsed file objects, tree closures) are all this.
 */
export interface WeightedLruOptions<V> {
  weigh: (value: V) => number;
  maxWeight: number;
  /** A value heavier than this is not kept at all (default `maxWeight`). */
  maxItemWeight?: number;
  maxEntries?: number;
}

export class WeightedLru<K, V> {
  /** Least recently used first (Map insertion order; a hit moves its entry to the end). */
  private readonly entries = new Map<K, V>();
  private total = 0;

  constructor(private readonly options: WeightedLruOptions<V>) {}

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  /** Keeps `value` as the most recently used, dropping the least recently used beyond the bounds. */
  set(key: K, value: V): void {
    this.delete(key);
    const weight = this.options.weigh(value);
    if (weight > (this.options.maxItemWeight ?? this.options.maxWeight)) return;
    this.entries.set(key, value);
    this.total += weight;
    const maxEntries = this.options.maxEntries ?? Infinity;
    for (const oldest of this.entries.keys()) {
      if (this.total <= this.options.maxWeight && this.entries.size <= maxEntries) break;
      this.delete(oldest);
    }
  }

  delete(key: K): void {
    const value = this.entries.get(key);
    if (value === undefined) return;
    this.entries.delete(key);
    this.total -= this.options.weigh(value);
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  /** Keys and values, least recently used first, without touching recency. */
  keys(): IterableIterator<K> {
    return this.entries.keys();
  }

  values(): IterableIterator<V> {
    return this.entries.values();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Total weight of the values held. */
  get weight(): number {
    return this.total;
  }
}
