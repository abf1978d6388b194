/**
 * Releases: creating and listing them, their signed flags, garbage collection, and the TUF wiring
 * (`createTrust`, `registerTrustRoutes`). Composed by `buildApp`.
 */
export { collectGarbage, startGcJob } from './gc.js';
export type { GcJob } from './gc.js';
export { createRelease, getRelease, listReleases, refreshSigned, targetCustom } from './service.js';
export type { ReleaseServices } from './service.js';
export { createTrust, registerTrustRoutes } from './trust.js';
export type { Trust, TrustOptions } from './trust.js';
export { registerReleaseRoutes } from './routes.js';
