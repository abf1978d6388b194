import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

/** Prometheus counters for the object store (issue 2: bytes and chunks received and served). */
export interface ObjectMetrics {
  objectsReceived: Counter;
  bytesReceived: Counter<'encoding'>;
  objectsServed: Counter<'via'>;
  bytesServed: Counter<'via'>;
}

export function createObjectMetrics(registry: Registry): ObjectMetrics {
  return {
    objectsReceived: new Counter({
      name: 'flotilla_objects_received_total',
      help: 'Chunks and tree objects stored from uploads (duplicates excluded)',
      registers: [registry],
    }),
    bytesReceived: new Counter({
      name: 'flotilla_object_bytes_received_total',
      help: 'Bytes received by pack uploads: raw (uncompressed records) and wire (as sent)',
      labelNames: ['encoding'] as const,
      registers: [registry],
    }),
    objectsServed: new Counter({
      name: 'flotilla_objects_served_total',
      help: 'Chunks and tree objects served, per object GET or in packs',
      labelNames: ['via'] as const,
      registers: [registry],
    }),
    bytesServed: new Counter({
      name: 'flotilla_object_bytes_served_total',
      help: 'Bytes served: frames by object GET, uncompressed records in packs',
      labelNames: ['via'] as const,
      registers: [registry],
    }),
  };
}

/** Prometheus counters for file deltas (`POST /api/v1/objects/deltas` and precomputation). */
export interface DeltaMetrics {
  /** Records sent in delta packs, by kind (`zstd` or `none`). */
  served: Counter<'kind'>;
  /** Payload bytes of the `zstd` records sent. */
  bytesServed: Counter;
  /** Pairs whose answer was computed (not found in the cache), by the kind decided. */
  computed: Counter<'kind'>;
  /** Pairs answered from the on-disk cache. */
  cacheHits: Counter;
  /** Computations that failed (answered `none`, not cached). */
  failures: Counter;
}

export function createDeltaMetrics(registry: Registry): DeltaMetrics {
  return {
    served: new Counter({
      name: 'flotilla_deltas_served_total',
      help: 'Delta pack records served, by kind (zstd: a delta; none: fetch the chunks)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    bytesServed: new Counter({
      name: 'flotilla_delta_bytes_served_total',
      help: 'Bytes of zstd delta payloads served',
      registers: [registry],
    }),
    computed: new Counter({
      name: 'flotilla_deltas_computed_total',
      help: 'File pairs whose delta was computed (cache misses), by the kind decided',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    cacheHits: new Counter({
      name: 'flotilla_delta_cache_hits_total',
      help: 'File pairs answered from the delta cache with no computation',
      registers: [registry],
    }),
    failures: new Counter({
      name: 'flotilla_delta_failures_total',
      help: 'Delta computations that failed (answered "none", not cached)',
      registers: [registry],
    }),
  };
}

/** Prometheus metrics of the tree-pack route's closure cache (objects sent count in ObjectMetrics). */
export interface TreePackMetrics {
  /** Closure lookups: `hit` (cached), `miss` (built now), `shared` (joined a build in progress). */
  closureLookups: Counter<'result'>;
  /** Tree objects held over all cached closures. */
  cachedObjects: Gauge;
}

export function createTreePackMetrics(registry: Registry): TreePackMetrics {
  return {
    closureLookups: new Counter({
      name: 'flotilla_tree_closure_lookups_total',
      help: 'Tree closures asked for by tree-pack requests (root and have roots), by result: hit, miss, shared',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    cachedObjects: new Gauge({
      name: 'flotilla_tree_closure_cached_objects',
      help: 'Tree objects held by the cached tree closures',
      registers: [registry],
    }),
  };
}
