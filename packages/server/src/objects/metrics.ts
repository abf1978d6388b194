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
