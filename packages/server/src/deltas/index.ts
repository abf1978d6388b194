/**
 * The deltas module: file deltas between releases (service, on-disk cache, worker encoder), which
 * pairs a device may get, precomputation on demand and after deployments, and their routes. It
 * reads the object store (objects/) and never the other way round.
 */
export { DeltaCache } from './delta-cache.js';
export { UpdatePairs } from './delta-pairs.js';
export { DeltaEncoder } from './delta-worker.js';
export { createDeltaMetrics } from './metrics.js';
export type { DeltaMetrics } from './metrics.js';
export { precomputeDeltas, startDeploymentPrecompute } from './precompute.js';
export type { DeltaPrecomputeServices, DeploymentPrecompute } from './precompute.js';
export { registerDeltaRoutes } from './routes.js';
export { DeltaService } from './service.js';
export type { DeltaPriority } from './service.js';
