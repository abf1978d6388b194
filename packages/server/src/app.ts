/**
 * `buildApp` assembles the control plane's HTTP application from a validated config: database,
 * context, validation, error envelope, operator auth, OpenAPI, metrics and every route group.
 * It never listens; only `main.ts` does.
 */
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
import { installOperatorAuth } from './http/auth.js';
import { closeConnectionsOnClose } from './http/drain.js';
import { guardConnections } from './http/connections.js';
import { clientErrorHandler, installErrorHandling } from './http/errors.js';
import { installHttpMetrics } from './http/metrics.js';
import { installOpenApi } from './http/openapi.js';
import { createRateLimits } from './http/rate-limits.js';
import { installValidators } from './http/validation.js';
import { createLogger } from './logger.js';
import { registerReleaseApi } from './releases/index.js';
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
}

export interface BuiltApp {
  app: FastifyInstance;
  ctx: ServerContext;
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
    const ctx: ServerContext = Object.freeze({
      config,
      db: database.db,
      dialect: database.dialect,
      log,
      clock,
      audit: createAuditRecorder(database.db, clock),
      metrics,
      limits: createRateLimits(config, metrics, log),
    });
    const initialAdminPassword = await ensureBootstrapAdmin(ctx);
    const app = await createFastify(ctx, opts.beforeRoutes);
    if (ownsDatabase) app.addHook('onClose', () => database.close());
    return { app, ctx, initialAdminPassword };
  } catch (e) {
    if (ownsDatabase) await database.close().catch(() => undefined);
    throw e;
  }
}

async function createFastify(
  ctx: ServerContext,
  beforeRoutes: BuildAppOptions['beforeRoutes'],
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
  registerTokenRoutes(app, ctx);
  registerUserRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  const devices = await registerDeviceApi(app, ctx);
  await registerReleaseApi(app, ctx, devices);
  return app;
}
