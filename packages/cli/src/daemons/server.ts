/**
 * Starts the control plane in this process with the CLI's logger; shared by `flotilla server` and
 * `flotilla up`. The server package is loaded only here, so commands that merely talk to a server
 * never load it.
 */
import { FlotillaError } from '@flotilla/protocol';
import type { ServerExtension, ServerFlags } from '@flotilla/server';
import type { Logger } from 'pino';
import type { CliIo } from '../io.js';
import { chooseLogFormat, createLogger } from '../process/logger.js';
import type { LogFormat } from '../process/logger.js';

export interface RunningServer {
  url: string;
  logger: Logger;
  logFormat: LogFormat;
  adminUsername: string;
  /** The generated password of the first admin when this start created it (show once), else null. */
  initialAdminPassword: string | null;
  /** The bootstrap admin nobody has signed in as yet, and how to reset its password; else null. */
  unclaimedAdmin: { username: string; resetCommand: string } | null;
  /** The admin password from FLOTILLA_ADMIN_PASSWORD, if set; never printed. */
  configuredAdminPassword: string | null;
  close(): Promise<void>;
}

export async function startEmbeddedServer(
  io: CliIo,
  flags: ServerFlags,
  extensions: readonly ServerExtension[] = [],
): Promise<RunningServer> {
  const { resolveServerConfig, startServer } = await import('@flotilla/server');
  const config = resolveServerConfig({ flags, env: { ...io.env } });
  const isTTY = io.stdout.isTTY === true;
  const logFormat = chooseLogFormat(flags.logFormat ?? io.env.FLOTILLA_LOG_FORMAT, config.logFormat, isTTY);
  const logger = await createLogger({
    level: config.logLevel,
    format: logFormat,
    destination: io.stdout,
    color: isTTY,
  });
  const server = await startServer(config, { logger, extensions }).catch((e: unknown) => {
    throw listenError(e, `${config.listenHost}:${config.listenPort}`);
  });
  return {
    url: server.url,
    logger,
    logFormat,
    adminUsername: config.adminUsername,
    initialAdminPassword: server.initialAdminPassword,
    unclaimedAdmin: server.unclaimedAdmin,
    configuredAdminPassword: config.adminPassword,
    close: () => server.close(),
  };
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'is already in use',
  EACCES: 'needs privileges this user does not have',
  EADDRNOTAVAIL: 'is not an address of this machine',
};

/** The usual reasons a server cannot listen, as a configuration error naming the address. */
function listenError(error: unknown, address: string): unknown {
  const reason = LISTEN_ERRORS[(error as NodeJS.ErrnoException).code ?? ''];
  if (!reason) return error;
  const problem = `--listen: ${address} ${reason}`;
  return new FlotillaError('FLT_CONFIG_INVALID', `cannot listen on ${address}`, {
    cause: error,
    details: { problems: [problem] },
  });
}

/** What to print when the admin's generated password may never have been seen. */
export function unclaimedAdminHint(admin: { username: string; resetCommand: string }): string {
  return (
    `nobody has signed in as "${admin.username}" yet: if its generated password was never shown ` +
    `(e.g. an earlier start failed), stop the server and set a new one with\n  ${admin.resetCommand}\n`
  );
}
