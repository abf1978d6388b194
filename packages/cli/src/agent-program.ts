/**
 * `flotilla-agent`, the command of the self-contained agent bundle (docs/agent-lifecycle.md): only
 * the device side of `flotilla` (`agent`, `loader`, the release health probe), so the bundle
 * carries no server or operator code.
 */
import { Command } from 'commander';
import { serverUrlArg } from './args.js';
import { joinSubcommandVersion, registerAgentCommand } from './commands/agent/run.js';
import { registerLoaderCommands } from './commands/loader/run.js';
import { agentVersion } from './agent-version.js';
import { ExitCode } from './exit-codes.js';
import { commanderOutput } from './io.js';
import type { CliIo } from './io.js';
import { reportError } from './report-error.js';

export function buildAgentProgram(io: CliIo): Command {
  const program = new Command('flotilla-agent')
    .description('The Flotilla device agent and its loader.')
    .option('--server <url>', 'server URL (default: $FLOTILLA_SERVER)', serverUrlArg)
    .option('--json', 'print results as JSON (for scripts)')
    .option('--config-dir <dir>', 'where credentials live (unused by the agent)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput(commanderOutput(io));
  registerAgentCommand(program, io);
  registerLoaderCommands(program, io);
  return program;
}

export async function runAgentCli(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.length === 1 && argv[0] === '--version') {
    io.stdout.write(`flotilla-agent ${agentVersion()}\n`);
    return ExitCode.ok;
  }
  try {
    await buildAgentProgram(io).parseAsync(joinSubcommandVersion(argv), { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    return reportError(error, io);
  }
}
