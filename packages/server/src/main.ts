/** The only place the server listens. The CLI (`flotilla server`) wraps this and handles signals. */
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { ServerConfig } from './config.js';
import type { ServerContext } from './context.js';

export interface RunningServer {
  /** Where it listens, e.g. `http://127.0.0.1:7070` (the real port when configured with 0). */
  url: string;
  ctx: ServerContext;
  /** The generated password of a just-created first admin; show it once, never log it. */
  initialAdminPassword: string | null;
  /** Stops accepting, lets in-flight requests finish, then closes the database. Idempotent. */
  close(): Promise<void>;
}

export async function startServer(
  config: ServerConfig,
  options: { logger?: Logger } = {},
): Promise<RunningServer> {
  const built = await buildApp(options.logger ? { config, logger: options.logger } : { config });
  const { app, ctx } = built;
  try {
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
    close: () => (closing ??= app.close()),
  };
}
