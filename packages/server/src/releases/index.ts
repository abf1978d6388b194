/**
 * Signed releases on the server: the TUF layer (image repository, director), the object store and
 * its routes, releases with garbage collection, deployments and update reports. `buildApp` calls
 * `registerReleaseApi` after the device API, whose runtime (presence, authenticator) it uses.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { registerDeploymentRoutes } from '../deployments/index.js';
import { createDeviceAuthenticator } from '../devices/index.js';
import type { DeviceRuntime } from '../devices/index.js';
import { createObjectMetrics } from '../objects/metrics.js';
import { registerObjectRoutes } from '../objects/routes.js';
import { FsObjectStore } from '../objects/store.js';
import type { ObjectStore } from '../objects/store.js';
import { startGcJob } from './gc.js';
import { registerReleaseRoutes } from './routes.js';
import { refreshSigned } from './service.js';
import { setUpTrust } from './trust.js';
import type { Trust } from './trust.js';

export { collectGarbage, startGcJob } from './gc.js';
export type { GcJob } from './gc.js';
export { createRelease, getRelease, listReleases, refreshSigned, targetCustom } from './service.js';
export type { ReleaseServices } from './service.js';
export { setUpTrust } from './trust.js';
export type { Trust } from './trust.js';

export interface ReleaseApi {
  store: ObjectStore;
  trust: Trust;
}

export async function registerReleaseApi(
  app: FastifyInstance,
  ctx: ServerContext,
  devices: DeviceRuntime,
): Promise<ReleaseApi> {
  const deviceAuth = createDeviceAuthenticator(devices);
  const store = await FsObjectStore.open(ctx.config.dataDir);
  const trust = await setUpTrust(app, ctx, {
    deviceAuth,
    onTargetsChanged: (image) => refreshSigned(ctx, image),
  });
  // Targets may have changed while the server was down (or another replica accepted them).
  await refreshSigned(ctx, trust.image);
  await registerObjectRoutes(app, {
    store,
    metrics: createObjectMetrics(ctx.metrics),
    deviceAuth,
    maxUploadBytes: ctx.config.maxUploadBytes,
  });
  const gc = startGcJob(ctx, store);
  app.addHook('preClose', () => gc.stop());
  registerReleaseRoutes(app, { ctx, store, trust }, gc);
  registerDeploymentRoutes(app, { ctx, trust, devices }, deviceAuth);
  return { store, trust };
}
