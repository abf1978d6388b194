import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { logFormatOption, logLevelOption } from '../../args.js';
import { cliBinPath } from '../../bin-path.js';
import { contextFor } from '../../context.js';
import { startEmbeddedServer, unclaimedAdminHint } from '../../daemons/server.js';
import { defaultUpDataDir } from '../../config/paths.js';
import { resolveKeysDir } from '../../signing/keys-dir.js';
import { resetQuickStart } from '../../up/reset.js';
import { gatewayExtension, gatewayOptionsFrom } from '../../gateway/extension.js';
import { dashboardDirIfBuilt, dashboardExtension } from '../../web/extension.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import type { LogFormat } from '../../process/logger.js';
import { handleShutdownSignals } from '../../process/signals.js';
import { SupervisedProcess, agentEnv } from '../../up/agent-process.js';
import { upBanner } from '../../up/banner.js';
import { ensureCliLogin, ensureLocalAgentKey } from '../../up/bootstrap.js';

interface UpOptions {
  dataDir?: string;
  reset?: boolean;
  listen: string;
  logLevel?: string;
  logFormat?: LogFormat;
  gatewayConfig?: string;
}

export function registerUpCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('up')
    .description('quick start: a server and a local agent on this machine, the CLI logged in')
    .option(
      '--data-dir <dir>',
      'everything lives here: server/, agent/, the agent registration key (default: $XDG_DATA_HOME/flotilla/up, else ~/.local/share/flotilla/up)',
    )
    .option(
      '--reset',
      "start over: delete the data dir, this server's CLI credentials, and move its offline keys to <keys-dir>/retired/",
    )
    .option('--listen <host:port>', 'where the server listens', '127.0.0.1:7070')
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .option(
      '--gateway-config <file>',
      'image gateway configuration, YAML (default: $FLOTILLA_GATEWAY_CONFIG; docs/gateway.md)',
    )
    .action(async (opts: UpOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const dataDir = resolve(io.cwd, opts.dataDir ?? defaultUpDataDir(io.env));
      const say = (message: string) => void io.stderr.write(`[up] ${message}\n`);
      if (opts.reset) {
        const reset = await resetQuickStart({
          dataDir,
          url: `http://${opts.listen}`,
          configDir: ctx.configDir,
          keysDir: resolveKeysDir(undefined, ctx.configDir, io.cwd),
        });
        say(reset.removedDataDir ? `reset: removed ${dataDir}` : `reset: ${dataDir} did not exist`);
        if (reset.removedCredentials) say(`reset: removed ${reset.removedCredentials}`);
        if (reset.retiredKeysTo)
          say(
            `reset: moved ${reset.retiredKeys} offline key files of the old server to ${reset.retiredKeysTo}`,
          );
      }
      const webDir = await dashboardDirIfBuilt();
      const server = await startEmbeddedServer(
        io,
        {
          dataDir: join(dataDir, 'server'),
          listen: opts.listen,
          ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
          ...(opts.logFormat ? { logFormat: opts.logFormat } : {}),
        },
        [
          gatewayExtension(gatewayOptionsFrom({ gatewayConfig: opts.gatewayConfig }, io.env)),
          ...(webDir === null ? [] : [dashboardExtension(webDir)]),
        ],
      );
      let agent: SupervisedProcess | null = null;
      const shutdown = handleShutdownSignals({
        signals: io.signals,
        exit: io.exit,
        log: say,
        stop: async () => {
          // The agent first, so that it never sees its server vanish.
          await agent?.stop();
          await server.close();
        },
      });
      try {
        const cli = await ensureCliLogin({
          url: server.url,
          configDir: ctx.configDir,
          hostname: io.hostname,
          adminUsername: server.adminUsername,
          adminPassword: server.initialAdminPassword ?? server.configuredAdminPassword,
        });
        const keyFile = join(dataDir, 'agent-registration.key');
        await ensureLocalAgentKey(keyFile, cli.client).catch((error: unknown) => {
          // No credentials and no password: say how to get back in (or start over).
          if (server.unclaimedAdmin !== null) io.stderr.write(unclaimedAdminHint(server.unclaimedAdmin));
          io.stderr.write(
            'or start over with `flotilla up --reset` (deletes everything under ' + dataDir + ')\n',
          );
          throw error;
        });
        agent = new SupervisedProcess({
          command: process.execPath,
          args: [
            ...process.execArgv,
            cliBinPath(),
            'agent',
            '--server',
            server.url,
            '--data-dir',
            join(dataDir, 'agent'),
            '--registration-key-file',
            keyFile,
            ...(opts.logLevel ? ['--log-level', opts.logLevel] : []),
            // The child's stdout is a pipe; it logs in the format this terminal gets.
            '--log-format',
            server.logFormat,
          ],
          env: agentEnv(io.env),
          prefix: '[agent] ',
          stdout: io.stdout,
          stderr: io.stderr,
          log: (message) => say(`local agent ${message}`),
        });
        agent.start();
        io.stderr.write(
          upBanner({
            url: server.url,
            adminUsername: server.adminUsername,
            generatedPassword: server.initialAdminPassword,
            credentialsPath: cli.credentialsPath,
            dataDir,
            dashboard: webDir !== null,
          }),
        );
      } catch (error) {
        await shutdown.stopNow('setup failed');
        shutdown.dispose();
        throw error;
      }
      try {
        await shutdown.stopped;
        say('stopped');
      } finally {
        shutdown.dispose();
      }
    });
  examples(cmd, [
    'flotilla up',
    'flotilla up --reset                       # start over with a fresh server, agent and keys',
    'flotilla up --data-dir ~/flotilla --listen 127.0.0.1:8080',
    'FLOTILLA_ADMIN_PASSWORD=… flotilla up',
  ]);
}
