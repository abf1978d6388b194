/**
 * `buildApp` assembles the control plane's HTTP application from a validated config: database,
 * context, validation, error envelope, operator auth, OpenAPI, metrics and every module (the one
 * composition root: modules get what they need from here and never build each other's parts).
 * It never listens; only `main.ts` does.
 */
import { gatewayFleet } from './deployments/gateway-fleet.js';
import type { GatewayFleet } from './deployments/gateway-fleet.js';
import cookie from '@fastify/cookie';
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { createAuditRecorder } from './audit/recorder.js';
import { registerAuditRoutes } from './audit/routes.js';
import { registerAuthRoutes } from './auth/routes.js';
import { registerTokenRoutes } from './auth/token-routes.js';
import type { ServerConfig } from './config.js';
import type { Clock, ServerContext } from './context.js';
import { openDatabase } from './db/open.js';
import type { OpenDatabase } from './db/open.js';
import { registerDeviceApi } from './devices/index.js';
import { registerExtensions } from './extensions.js';
import type { ServerExtension } from './extensions.js';
import { installOperatorAuth } from './http/auth.js';
import { closeConnectionsOnClose } from './http/drain.js';
import { guardConnections } from './http/connections.js';
import { clientErrorHandler, installErrorHandling } from './http/errors.js';
import { installHttpMetrics } from './http/metrics.js';
import { installOpenApi } from './http/openapi.js';
import { createRateLimits } from './http/rate-limits.js';
import { installValidators } from './http/validation.js';
import { createLogger } from './logger.js';
import {
  createTrust,
  refreshSigned,
  registerReleaseRoutes,
  registerTrustRoutes,
  startGcJob,
} from './releases/index.js';
import {
  DeltaCache,
  DeltaEncoder,
  DeltaService,
  UpdatePairs,
  createDeltaMetrics,
  registerDeltaRoutes,
  startDeploymentPrecompute,
} from './deltas/index.js';
import { DeploymentJobs, DirectorSync, deploymentsPlugin } from './deployments/index.js';
import { registerRollouts } from './rollouts/index.js';
import { createEventBus } from './events/bus.js';
import type { EventBus } from './events/bus.js';
import { EventFeed, createFeedMetrics } from './events/feed.js';
import { EventLog } from './events/log.js';
import { createLocalNotifier, createRedisNotifier } from './events/notifier.js';
import { registerEventRoutes } from './events/routes.js';
import { registerFleetRoutes } from './fleet/overview.js';
import { ObjectAccess, objectReaders } from './objects/access.js';
import { createObjectMetrics, createTreePackMetrics } from './objects/metrics.js';
import { registerObjectRoutes } from './objects/routes.js';
import { OperatorStreams } from './remote/operator-streams.js';
import { registerRemoteRoutes } from './remote/routes.js';
import { FsObjectStore } from './objects/store.js';
import { TreeClosures } from './objects/tree-closures.js';
import { SecretVault, registerSecretRoutes } from './secrets/index.js';
import { secureDataDir } from './data-dir.js';
import { registerAgentDownloadRoutes } from './system/agent-downloads.js';
import { registerSystemRoutes } from './system/routes.js';
import { ensureBootstrapAdmin } from './users/bootstrap.js';
import { registerUserRoutes } from './users/routes.js';

export interface BuildAppOptions {
  config: ServerConfig;
  logger?: Logger;
  clock?: Clock;
  /** An already opened (and migrated) database; the caller keeps ownership and closes it. */
  db?: OpenDatabase;
  /**
   * Test seam: runs once the framework hooks (validation, errors, auth, OpenAPI) are installed and
   * before any route is registered, e.g. to observe routes with `onRoute` or add test routes.
   */
  beforeRoutes?: (app: FastifyInstance, ctx: ServerContext) => void;
  /** Packages the server does not import (the image gateway), registered after the built-in routes. */
  extensions?: readonly ServerExtension[];
  /** How often the rollout engine looks at every active rollout besides its nudges (default 1 s). */
  rolloutTickMs?: number;
}

export interface BuiltApp {
  app: FastifyInstance;
  ctx: ServerContext;
  /** The app's domain events (docs/architecture.md "Domain events"). */
  events: EventBus;
  /** The persisted event log the event stream serves (docs/events.md). */
  eventLog: EventLog;
  /** The generated password of the admin created on this start, or null; shown once, never logged. */
  initialAdminPassword: string | null;
}

const systemClock: Clock = { now: () => new Date() };
/** Route ids may be up to 128 characters (protocol `Id`); Fastify's default is 100. */
const MAX_PARAM_LENGTH = 256;

export async function buildApp(opts: BuildAppOptions): Promise<BuiltApp> {
  const { config } = opts;
  const log = opts.logger ?? createLogger(config);
  await secureDataDir(config.dataDir, log);
  const database = opts.db ?? (await openDatabase(config.database, log));
  const ownsDatabase = opts.db === undefined;
  try {
    const clock = opts.clock ?? systemClock;
    const metrics = new Registry();
    // The event log is built with the modules; audit entries written before it exists wait in the outbox.
    const outbox = { written: (): void => undefined };
    const ctx: ServerContext = Object.freeze({
      config,
      db: database.db,
      dialect: database.dialect,
      log,
      clock,
      audit: createAuditRecorder(database.db, clock, () => outbox.written()),
      metrics,
      limits: createRateLimits(config, metrics, log),
    });
    const initialAdminPassword = await ensureBootstrapAdmin(ctx);
    const events = createEventBus(log.child({ component: 'events' }));
    const eventLog = await openEventLog(ctx, events);
    outbox.written = () => eventLog.log.outboxWritten();
    const app = await createFastify(
      ctx,
      events,
      eventLog,
      opts.beforeRoutes,
      opts.extensions ?? [],
      opts.rolloutTickMs,
    );
    if (ownsDatabase) app.addHook('onClose', () => database.close());
    return { app, ctx, events, eventLog: eventLog.log, initialAdminPassword };
  } catch (e) {
    if (ownsDatabase) await database.close().catch(() => undefined);
    throw e;
  }
}

interface OpenEventLog {
  log: EventLog;
  feed: EventFeed;
  close(): Promise<void>;
}

/**
 * The event log, written from every event of the bus, and this process's feed of it; new-event
 * notifications go through Redis when `redisUrl` is set (docs/events.md).
 */
async function openEventLog(ctx: ServerContext, events: EventBus): Promise<OpenEventLog> {
  const notifier =
    ctx.config.redisUrl === null
      ? createLocalNotifier()
      : await createRedisNotifier(ctx.config.redisUrl, ctx.log.child({ component: 'events' }));
  const log = new EventLog(ctx, { onCommitted: (seq) => notifier.publish(seq) });
  const feed = new EventFeed(log, notifier, ctx.log.child({ component: 'events' }));
  try {
    await feed.start();
  } catch (e) {
    await notifier.close();
    throw e;
  }
  const unsubscribe = events.subscribe(
    () => true,
    (e) => log.append(e),
  );
  log.start();
  return {
    log,
    feed,
    async close() {
      unsubscribe();
      await log.stop();
      feed.stop();
      await notifier.close();
    },
  };
}

async function createFastify(
  ctx: ServerContext,
  events: EventBus,
  eventLog: OpenEventLog,
  beforeRoutes: BuildAppOptions['beforeRoutes'],
  extensions: readonly ServerExtension[],
  rolloutTickMs: number | undefined,
): Promise<FastifyInstance> {
  const { config } = ctx;
  // Typed as Fastify's logger so that the instance has the plain FastifyInstance type.
  const loggerInstance: FastifyBaseLogger = ctx.log;
  const app = Fastify({
    loggerInstance,
    bodyLimit: config.bodyLimitBytes,
    http: {
      maxHeaderSize: config.maxHeaderBytes,
      headersTimeout: config.headersTimeoutMs,
      // How often Node looks for connections past the header timeout (its default is 30 s).
      connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(config.headersTimeoutMs / 4))),
    },
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // No total request timeout: a long upload or download is fine while its bytes move; the
    // stall watchdog (http/connections.ts) closes it when they stop.
    requestTimeout: 0,
    trustProxy: config.trustProxy,
    clientErrorHandler,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Every device polls: logging each request at info would drown the operator log. Requests are
    // logged at debug below, errors by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
  });
  closeConnectionsOnClose(app);
  app.addHook('onResponse', (request, reply, done) => {
    request.log.debug(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
    done();
  });
  installValidators(app);
  installErrorHandling(app);
  await app.register(cookie);
  await installOpenApi(app);
  installHttpMetrics(app, ctx.metrics);
  const stopGuard = guardConnections(app.server, config, ctx.metrics, ctx.log);
  app.addHook('onClose', (_instance, done) => {
    stopGuard();
    done();
  });
  installOperatorAuth(app, ctx);
  beforeRoutes?.(app, ctx);

  registerSystemRoutes(app, ctx);
  registerAgentDownloadRoutes(app, ctx);
  registerAuthRoutes(app, ctx);
  // Before the token and user routes: its hook closes the streams of an operator they revoke.
  const operators = new OperatorStreams(ctx);
  operators.install(app);
  registerTokenRoutes(app, ctx);
  registerUserRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  const fleet = await composeModules(app, ctx, { events, rolloutTickMs, eventLog, operators });
  await registerExtensions(app, ctx, extensions, fleet);
  return app;
}

/**
 * The one composition root of the modules (docs/architecture.md "Server"): the device API and its
 * authenticator (built once, passed to every route devices call), the object store, the TUF layer,
 * releases, deltas, secrets and deployments, joined by one domain event bus.
 */
async function composeModules(
  app: FastifyInstance,
  ctx: ServerContext,
  parts: {
    events: EventBus;
    rolloutTickMs: number | undefined;
    eventLog: OpenEventLog;
    operators: OperatorStreams;
  },
): Promise<GatewayFleet> {
  const { events, rolloutTickMs, eventLog, operators } = parts;
  const { runtime: devices, auth: deviceAuth } = await registerDeviceApi(app, ctx, events);
  registerEventRoutes(app, {
    ctx,
    log: eventLog.log,
    feed: eventLog.feed,
    metrics: createFeedMetrics(ctx.metrics),
  });
  registerFleetRoutes(app, devices);
  // After the device API's preClose (connections closed, their offline events emitted).
  app.addHook('preClose', () => eventLog.close());

  const store = await FsObjectStore.open(ctx.config.dataDir);
  const access = new ObjectAccess({ db: ctx.db, clock: ctx.clock });
  // A report may move an app's current and previous release: what the device may read changes.
  events.subscribe(
    (e) => e.type.startsWith('device.update.') || e.type === 'device.app.status',
    (e) => {
      if ('deviceId' in e) access.forget(e.deviceId);
    },
  );
  const readers = objectReaders(deviceAuth, access);

  const vault = await SecretVault.open(ctx.config.dataDir);
  const trust = await createTrust(ctx);
  // Registered after the database's: onClose hooks run last-registered-first.
  app.addHook('onClose', () => trust.close());
  const directors = new DirectorSync({ ctx, director: trust.director, vault });
  await registerTrustRoutes(app, ctx, trust, {
    deviceAuth,
    deviceMayRead: async (device, id) => (await access.scopeOf(device)).canRead(id),
    store,
    onTargetsChanged: (image) => refreshSigned(ctx, image),
    beforeDirectorRead: (deviceId, stateVersion) => directors.beforeRead(deviceId, stateVersion),
  });
  // Targets may have changed while the server was down (or another replica accepted them).
  await refreshSigned(ctx, trust.image);
  // Assignments committed before a crash whose director metadata was not re-signed yet.
  await directors.repairPending();

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
    readers,
    maxUploadBytes: ctx.config.maxUploadBytes,
    treeClosures: new TreeClosures({ store, metrics: createTreePackMetrics(ctx.metrics) }),
  });
  const precomputeServices = { ctx, store, deltas };
  registerDeltaRoutes(app, {
    serving: { deltas, metrics: deltaMetrics, updatePairs: new UpdatePairs({ store }) },
    precompute: precomputeServices,
    readers,
  });
  const precompute = startDeploymentPrecompute(precomputeServices);
  events.on('deployment.created', (e) => precompute.afterDeploy(e.app, e.version));

  const gc = startGcJob(ctx, store, {
    // Deltas of deleted objects can never be asked for again (ids are content hashes).
    afterRound: async (result) => {
      const pruned = await deltaCache.prune(new Set(result.deleted), (id) => store.has(id));
      if (pruned.removed > 0) deltaLog.info(pruned, 'delta cache entries of deleted objects removed');
    },
  });
  app.addHook('preClose', async () => {
    // Shutdown waits for no delta: queued and running computations end now (answered "none").
    const precomputing = precompute.stop();
    await deltas.close();
    await precomputing;
    await gc.stop();
  });
  registerReleaseRoutes(app, { ctx, store, trust }, gc);
  registerSecretRoutes(app, ctx, vault);
  const deployServices = { ctx, trust, devices, directors, events };
  const jobs = new DeploymentJobs(deployServices);
  // Batches in flight finish; the rest of a deployment is resumed at the next start.
  app.addHook('preClose', () => jobs.stop());
  await app.register(deploymentsPlugin, {
    services: { ...deployServices, jobs },
    deviceAuth,
  });
  // Deployments a stopped server left running carry on (after the re-signs repairPending did).
  await jobs.resume();
  registerRollouts(app, { services: { ...deployServices, jobs }, tickMs: rolloutTickMs });
  // Remote access: service commands, stats, logs, exec and tunnels (docs/remote-access.md).
  registerRemoteRoutes(app, { ctx, presence: devices.presence, operators });
  app.addHook('preClose', () => operators.stop());
  return gatewayFleet({ ...deployServices, jobs, store });
}
