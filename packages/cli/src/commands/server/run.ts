import type { Command } from 'commander';
import { logFormatOption, logLevelOption } from '../../args.js';
import { startEmbeddedServer, unclaimedAdminHint } from '../../daemons/server.js';
import { gatewayExtension, gatewayOptionsFrom } from '../../gateway/extension.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import type { LogFormat } from '../../process/logger.js';
import { handleShutdownSignals } from '../../process/signals.js';

interface ServerOptions {
  config?: string;
  dataDir?: string;
  listen?: string;
  database?: string;
  logLevel?: string;
  logFormat?: LogFormat;
  gatewayConfig?: string;
  redis?: string;
}

export function registerServerCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('server')
    .description(
      'run the control plane (operator HTTP API with its docs at /docs, device gateway) until stopped',
    )
    .option('--config <file>', 'YAML configuration file (default: $FLOTILLA_CONFIG)')
    .option('--data-dir <dir>', 'where the database and stored content live (default ./.flotilla/server)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:7070; :0 for any free port)')
    .option('--database <url>', 'sqlite:PATH or postgres://user@host/db (default: SQLite in the data dir)')
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .option(
      '--gateway-config <file>',
      'image gateway configuration, YAML (default: $FLOTILLA_GATEWAY_CONFIG; docs/gateway.md)',
    )
    .option(
      '--redis <url>',
      'redis://HOST:PORT: queue image imports for `flotilla gateway worker` processes (default: $FLOTILLA_REDIS_URL, else convert in this process)',
    )
    .action(async (opts: ServerOptions) => {
      const { gatewayConfig, redis, ...flags } = opts;
      const gateway = gatewayExtension(gatewayOptionsFrom({ gatewayConfig, redis }, io.env));
      const server = await startEmbeddedServer(io, flags, [gateway]);
      io.stderr.write(`flotilla server listening on ${server.url}\n`);
      if (server.initialAdminPassword !== null) {
        io.stderr.write(
          `created admin user "${server.adminUsername}" with password: ${server.initialAdminPassword}\n` +
            '(shown only this once: log in with `flotilla login`, then change it)\n',
        );
      } else if (server.unclaimedAdmin !== null) {
        io.stderr.write(unclaimedAdminHint(server.unclaimedAdmin));
      }
      const shutdown = handleShutdownSignals({
        signals: io.signals,
        exit: io.exit,
        log: (message) => server.logger.info(message),
        stop: () => server.close(),
      });
      try {
        await shutdown.stopped;
        server.logger.info('server stopped');
      } finally {
        shutdown.dispose();
      }
    });
  examples(cmd, [
    'flotilla server',
    'flotilla server --listen 0.0.0.0:7070 --data-dir /var/lib/flotilla',
    'flotilla server --database postgres://flotilla@db.internal/flotilla --log-format json',
    'FLOTILLA_ADMIN_PASSWORD=… flotilla server --config /etc/flotilla/server.yaml',
  ]);
}
