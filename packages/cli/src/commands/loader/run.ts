import { parseDurationMs } from '@flotilla/protocol';
import type { Command } from 'commander';
import { durationArg, logFormatArg } from '../../args.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { runLoader, runProbe } from '../../daemons/loader.js';
import type { LogFormat } from '../../process/logger.js';

/** The exit status that tells the launcher to start the loader again from the new `current`. */
export const RESTART_LOADER_EXIT = 75;

interface LoaderOptions {
  installDir: string;
  healthWindow: string;
  once?: boolean;
  logLevel?: string;
  logFormat?: LogFormat;
}

export function registerLoaderCommands(program: Command, io: CliIo): void {
  const cmd = program
    .command('loader')
    .description(
      'run the agent under the loader: it runs the installed agent release, switches to new ones and switches back when they fail (docs/agent-lifecycle.md)',
    )
    .requiredOption(
      '--install-dir <dir>',
      'the install directory: versions/, current, previous, loader-state.json',
    )
    .option('--health-window <duration>', 'how long a new agent has to reach the server', durationArg, '2m')
    .option(
      '--once',
      'timer mode: run the agent for one update pass (its --once), carry out a switch it asks for, then exit with its status',
    )
    .option('--log-level <level>', "the loader's log level (default info)")
    .option('--log-format <format>', 'pretty or json', logFormatArg)
    .argument('<agent-args...>', "after --: the agent's options, e.g. -- --server URL --data-dir DIR")
    .action(async (agentArgs: string[], opts: LoaderOptions) => {
      const exit = await runLoader(io, {
        installDir: opts.installDir,
        healthWindowMs: parseDurationMs(opts.healthWindow),
        agentArgs: opts.once === true ? [...agentArgs, '--once'] : agentArgs,
        once: opts.once === true,
        logLevel: opts.logLevel ?? 'info',
        ...(opts.logFormat && { logFormat: opts.logFormat }),
      });
      if (exit === 'restart-loader') io.exit(RESTART_LOADER_EXIT);
      else if (typeof exit === 'object' && exit.agentExit !== 0) io.exit(exit.agentExit);
    });
  examples(cmd, [
    'flotilla loader --install-dir /opt/flotilla-agent -- --data-dir /var/lib/flotilla-agent \\\n' +
      '      --server https://flotilla.example.com --registration-key-file /etc/flotilla/registration.key',
    'flotilla loader --once --install-dir /opt/flotilla-agent -- --data-dir /var/lib/flotilla-agent   # timer mode: one update pass',
  ]);
  const probe = program
    .command('loader-probe', { hidden: true })
    .description("an agent release's health probe (run by the update engine in the release directory)")
    .action(async () => {
      const code = await runProbe(io);
      if (code !== 0) io.exit(code);
    });
  examples(probe, [
    'cd "$FLOTILLA_RELEASE_DIR" && FLOTILLA_APP_DATA=/var/lib/flotilla-agent/apps/flotilla-agent/data flotilla loader-probe',
  ]);
}
