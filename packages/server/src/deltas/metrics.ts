import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';

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
