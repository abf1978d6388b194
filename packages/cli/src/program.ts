/**
 * The `flotilla` command line as a factory: `runCli(argv, io)` builds a fresh commander program,
 * runs one command and returns its exit code, so tests run the CLI in-process.
 */
import { Command, CommanderError } from 'commander';
import { FLOTILLA_VERSION } from '@flotilla/protocol';
import { serverUrlArg } from './args.js';
import { registerAgentBundle } from './commands/agent/bundle.js';
import { registerAgentDeb } from './commands/agent/deb.js';
import { registerAgentRelease } from './commands/agent/release-push.js';
import { joinSubcommandVersion, registerAgentCommand } from './commands/agent/run.js';
import { registerAuditCommands } from './commands/audit/index.js';
import { registerAuthCommands } from './commands/auth/index.js';
import { registerDeployCommands } from './commands/deploy/index.js';
import { registerTunnelCommand } from './commands/remote/tunnel.js';
import { registerDeviceCommands } from './commands/devices/index.js';
import { registerEventsCommand } from './commands/events/index.js';
import { registerFleetCommand } from './commands/fleet/index.js';
import { registerGatewayCommands } from './commands/gateway/index.js';
import { registerImageCommands } from './commands/images/index.js';
import { registerKeyCommands } from './commands/keys/index.js';
import { registerLoaderCommands } from './commands/loader/run.js';
import { registerRegistrationKeyCommands } from './commands/regkeys/index.js';
import { registerRolloutCommands } from './commands/rollout/index.js';
import { registerReleaseCommands } from './commands/release/index.js';
import { registerServerCommand } from './commands/server/run.js';
import { registerSimCommand } from './commands/sim/run.js';
import { registerTokenCommands } from './commands/tokens/index.js';
import { registerUpCommand } from './commands/up/run.js';
import { registerUserCommands } from './commands/users/index.js';
import { ExitCode, ExitWith } from './exit-codes.js';
import { reportError } from './report-error.js';
import { commanderOutput } from './io.js';
import type { CliIo } from './io.js';

export function buildProgram(io: CliIo): Command {
  const program = new Command('flotilla')
    .description('Deploy and update signed software on fleets of machines.')
    .version(FLOTILLA_VERSION, '-V', 'print the version (also: flotilla --version)')
    .option(
      '--server <url>',
      'server URL (default: $FLOTILLA_SERVER, else the one you logged in to)',
      serverUrlArg,
    )
    .option('--json', 'print results as JSON (for scripts)')
    .option(
      '--config-dir <dir>',
      'where credentials live (default: $FLOTILLA_CONFIG_DIR, else ~/.config/flotilla)',
    )
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput(commanderOutput(io));
  // Subcommands inherit exitOverride and output settings from here, so these come after.
  registerAuthCommands(program, io);
  registerRegistrationKeyCommands(program, io);
  registerDeviceCommands(program, io);
  registerKeyCommands(program, io);
  registerReleaseCommands(program, io);
  // After devices: also adds `devices apps|rollback|restart` to that group.
  registerDeployCommands(program, io);
  registerTunnelCommand(program, io);
  registerRolloutCommands(program, io);
  registerAuditCommands(program, io);
  registerEventsCommand(program, io);
  registerFleetCommand(program, io);
  registerImageCommands(program, io);
  registerUserCommands(program, io);
  registerTokenCommands(program, io);
  registerServerCommand(program, io);
  const agent = registerAgentCommand(program, io);
  registerAgentBundle(agent, io);
  registerAgentDeb(agent, io);
  registerAgentRelease(agent, io);
  registerLoaderCommands(program, io);
  registerGatewayCommands(program, io);
  registerUpCommand(program, io);
  registerSimCommand(program, io);
  return program;
}

/** Runs one `flotilla` invocation (`argv` without node and script) and returns its exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // `--version` is only the program's own flag when it stands alone: commander would otherwise
  // take it anywhere on the line, and subcommands use it (`release push --version 1.4.0`,
  // `agent --version`).
  if (argv.length === 1 && argv[0] === '--version') {
    io.stdout.write(`${FLOTILLA_VERSION}\n`);
    return ExitCode.ok;
  }
  const program = buildProgram(io);
  try {
    await program.parseAsync(joinSubcommandVersion(argv), { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof ExitWith) return error.exitCode;
    if (isUnknownOptionAfterEntrypoint(error, argv)) {
      io.stderr.write(
        'hint: --entrypoint takes only words that do not start with -; give the whole command after --,\n' +
          '  e.g. flotilla release push ./site --app web --version 1.0.0 --runtime process -- python3 -m http.server 8000\n',
      );
    }
    return reportError(error, io);
  }
}

/** `--entrypoint python3 -m http.server`: commander stops at `-m`, an unknown option. */
function isUnknownOptionAfterEntrypoint(error: unknown, argv: readonly string[]): boolean {
  if (!(error instanceof CommanderError) || error.code !== 'commander.unknownOption') return false;
  const at = argv.indexOf('--entrypoint');
  const dashDash = argv.indexOf('--');
  return at >= 0 && (dashDash < 0 || at < dashDash);
}
