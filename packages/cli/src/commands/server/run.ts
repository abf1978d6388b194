import type { Command } from 'commander';
import { SERVER_CONFIG } from '@flotilla/server/config-keys';
import type { ServerFlags } from '@flotilla/server';
import { logFormatArg } from '../../args.js';
import { startEmbeddedServer, unclaimedAdminHint } from '../../daemons/server.js';
import { gatewayExtension, gatewayOptionsFrom } from '../../gateway/extension.js';
import { dashboardDirIfBuilt, dashboardExtension } from '../../web/extension.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { handleShutdownSignals } from '../../process/signals.js';

type ServerOptions = ServerFlags & { gatewayConfig?: string; redis?: string; dashboard?: boolean };

export function registerServerCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('server')
    .description(
      'run the control plane (operator HTTP API with its docs at /docs, device gateway) until stopped',
    )
    .option('--config <file>', 'YAML configuration file (default: $FLOTILLA_CONFIG)')
    .option(
      '--listen <host:port>',
      'sets listenHost and listenPort: host:port, [v6]:port or :port (default 127.0.0.1:7070; :0 for any free port; $FLOTILLA_LISTEN)',
    )
    .option(
      '--gateway-config <file>',
      'image gateway configuration, YAML (default: $FLOTILLA_GATEWAY_CONFIG; docs/gateway.md)',
    )
    .option(
      '--redis <url>',
      'redis://HOST:PORT: queue image imports for `flotilla gateway worker` processes (default: $FLOTILLA_REDIS_URL, else convert in this process)',
    )
    .option('--no-dashboard', 'do not serve the web dashboard at / (docs/web.md)')
    .addHelpText(
      'after',
      '\nEvery option but --config, --listen, --gateway-config, --redis and --no-dashboard is a configuration key\n' +
        '(docs/operations.md "Configuration"): file < environment < flags.',
    );
  // Every configuration key with a flag, from the server's one declaration of its keys.
  for (const option of SERVER_CONFIG.cliOptions) {
    if (option.key === 'logFormat') cmd.option(option.flags, option.description, logFormatArg);
    else cmd.option(option.flags, option.description);
  }
  cmd.action(async (opts: ServerOptions) => {
    const { gatewayConfig, redis, dashboard, ...flags } = opts;
    const gateway = gatewayExtension(gatewayOptionsFrom({ gatewayConfig, redis }, io.env));
    const webDir = dashboard === false ? null : await dashboardDirIfBuilt();
    const server = await startEmbeddedServer(io, flags, [
      gateway,
      ...(webDir === null ? [] : [dashboardExtension(webDir)]),
    ]);
    io.stderr.write(`flotilla server listening on ${server.url}\n`);
    if (webDir !== null) io.stderr.write(`dashboard: ${server.url}/\n`);
    else if (dashboard !== false)
      io.stderr.write('dashboard: not built (npm run build -w packages/web), not served\n');
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
