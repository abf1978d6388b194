/** The only place the server listens. The CLI (`flotilla server`) wraps this and handles signals. */
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { lockDataDir } from '@flotilla/node-kit';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { ServerConfig } from './config.js';
import type { ServerContext } from './context.js';
import type { ServerExtension } from './extensions.js';
import { resetPasswordCommand, unclaimedBootstrapAdmin } from './users/recovery.js';

export interface RunningServer {
  /** Where it listens, e.g. `http://127.0.0.1:7070` (the real port when configured with 0). */
  url: string;
  ctx: ServerContext;
  /** The generated password of a just-created first admin; show it once, never log it. */
  initialAdminPassword: string | null;
  /**
   * When no password was generated now: the bootstrap admin nobody has signed in as yet (its
   * generated password may have been lost) and the command that resets it offline; else null.
   */
  unclaimedAdmin: { username: string; resetCommand: string } | null;
  /** Stops accepting, lets in-flight requests finish, then closes the database. Idempotent. */
  close(): Promise<void>;
}

export async function startServer(
  config: ServerConfig,
  options: { logger?: Logger; extensions?: readonly ServerExtension[] } = {},
): Promise<RunningServer> {
  // One server per data directory (FLT_DATA_DIR_LOCKED naming the other one's pid); and nothing is
  // created (database, first admin and its password) before the address is known to be free.
  const lock = lockDataDir(config.dataDir, 'flotilla server');
  try {
    await checkCanListen(config.listenHost, config.listenPort);
    const built = await buildApp({
      config,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.extensions ? { extensions: options.extensions } : {}),
    });
    const { app, ctx } = built;
    let unclaimed: string | null = null;
    // Every socket, upgraded ones included (Node's closeAllConnections() knows only HTTP ones).
    const sockets = new Set<Socket>();
    app.server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    try {
      if (built.initialAdminPassword === null && config.adminPassword === null)
        unclaimed = await unclaimedBootstrapAdmin(ctx.db);
      await app.listen({ host: config.listenHost, port: config.listenPort });
    } catch (e) {
      await app.close();
      throw e;
    }
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.listenPort;
    const host = config.listenHost.includes(':') ? `[${config.listenHost}]` : config.listenHost;
    let closing: Promise<void> | undefined;
    return {
      url: `http://${host}:${port}`,
      ctx,
      initialAdminPassword: built.initialAdminPassword,
      unclaimedAdmin:
        unclaimed === null
          ? null
          : { username: unclaimed, resetCommand: resetPasswordCommand(unclaimed, config) },
      close: () => (closing ??= closeWithin(app, sockets, ctx.log).finally(() => lock.release())),
    };
  } catch (e) {
    lock.release();
    throw e;
  }
}

/**
 * How long in-flight requests get to finish once the close begins. Past it, the connections still
 * open are cut, so that shutdown never hangs on a client (a slow download, or a keep-alive
 * connection a backing-off agent left idle) and ends well within the CLI's 15 s forced exit.
 */
const SHUTDOWN_GRACE_MS = 5_000;

async function closeWithin(
  app: Awaited<ReturnType<typeof buildApp>>['app'],
  sockets: ReadonlySet<Socket>,
  log: Logger,
): Promise<void> {
  const timer = setTimeout(() => {
    log.warn(
      { graceMs: SHUTDOWN_GRACE_MS, open: sockets.size },
      'shutdown: cutting the connections still open after the grace period',
    );
    app.server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
  }, SHUTDOWN_GRACE_MS);
  timer.unref();
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
  }
}

/** Binds the address once and lets it go: EADDRINUSE, EACCES, EADDRNOTAVAIL surface here. */
async function checkCanListen(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
