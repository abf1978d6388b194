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
import { ReleaseRoutes } from '@flotilla/protocol';
import { ObjectAccess, objectReaders } from '../objects/access.js';
import { DeltaCache } from '../objects/delta-cache.js';
import { UpdatePairs } from '../objects/delta-pairs.js';
import { DeltaEncoder } from '../objects/delta-worker.js';
import { DeltaService } from '../objects/deltas.js';
import { createDeltaMetrics, createObjectMetrics, createTreePackMetrics } from '../objects/metrics.js';
import { registerObjectRoutes } from '../objects/routes.js';
import { FsObjectStore } from '../objects/store.js';
import { TreeClosures } from '../objects/tree-closures.js';
import type { ObjectStore } from '../objects/store.js';
import { registerDeltaRoutes, startDeploymentPrecompute } from './deltas.js';
import { startGcJob } from './gc.js';
import { registerReleaseRoutes } from './routes.js';
import { refreshSigned } from './service.js';
import { setUpTrust } from './trust.js';
import type { Trust } from './trust.js';
import { SecretVault, registerSecretRoutes } from '../secrets/index.js';

export { precomputeDeltas } from './deltas.js';
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
  const access = new ObjectAccess({ db: ctx.db, clock: ctx.clock });
  const trust = await setUpTrust(app, ctx, {
    deviceAuth,
    deviceMayRead: async (device, id) => (await access.scopeOf(device)).canRead(id),
    store,
    onTargetsChanged: (image) => refreshSigned(ctx, image),
  });
  // Targets may have changed while the server was down (or another replica accepted them).
  await refreshSigned(ctx, trust.image);
  const deltaMetrics = createDeltaMetrics(ctx.metrics);
  const deltaLog = ctx.log.child({ component: 'deltas' });
  const deltaCache = DeltaCache.under(ctx.config.dataDir, deltaLog, ctx.config.deltaCacheMaxBytes);
  const deltas = new DeltaService({
    store,
    cache: deltaCache,
    encoder: new DeltaEncoder(deltaLog),
    metrics: deltaMetrics,
    level: ctx.config.deltaLevel,
    maxFileBytes: ctx.config.maxDeltaFileBytes,
    minSavingPercent: ctx.config.deltaCacheMinSavingPercent,
    log: deltaLog,
  });
  await registerObjectRoutes(app, {
    store,
    metrics: createObjectMetrics(ctx.metrics),
    deltas,
    deltaMetrics,
    readers: objectReaders(deviceAuth, access),
    updatePairs: new UpdatePairs({ store }),
    maxUploadBytes: ctx.config.maxUploadBytes,
    treeClosures: new TreeClosures({ store, metrics: createTreePackMetrics(ctx.metrics) }),
  });
  const gc = startGcJob(ctx, store, {
    // Deltas of deleted objects can never be asked for again (ids are content hashes).
    afterRound: async (result) => {
      const pruned = await deltaCache.prune(new Set(result.deleted), (id) => store.has(id));
      if (pruned.removed > 0) deltaLog.info(pruned, 'delta cache entries of deleted objects removed');
    },
  });
  const precompute = startDeploymentPrecompute({ ctx, store, deltas });
  app.addHook('preClose', async () => {
    // Shutdown waits for no delta: queued and running computations end now (answered "none").
    const precomputing = precompute.stop();
    await deltas.close();
    await precomputing;
    await gc.stop();
  });
  const vault = await SecretVault.open(ctx.config.dataDir);
  registerReleaseRoutes(app, { ctx, store, trust }, gc);
  registerSecretRoutes(app, ctx, vault);
  registerDeltaRoutes(app, { ctx, store, deltas });
  // The deployment routes in their own scope, so that this hook sees only them.
  await app.register((scope, _options, done) => {
    scope.addHook('onResponse', (request, reply, next) => {
      if (
        request.method === 'POST' &&
        request.routeOptions.url === ReleaseRoutes.deploy &&
        reply.statusCode === 200
      ) {
        const body = request.body as { app: string; version: string };
        precompute.afterDeploy(body.app, body.version);
      }
      next();
    });
    registerDeploymentRoutes(scope, { ctx, trust, devices, vault }, deviceAuth, {
      // A committed update moves current and previous: what the device may read changes.
      afterReport: (deviceId) => access.forget(deviceId),
    });
    done();
  });
  return { store, trust };
}
