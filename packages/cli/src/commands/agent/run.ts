import type { Command } from 'commander';
import { AGENT_CONFIG } from '@flotilla/agent';
import type { AgentFlags } from '@flotilla/agent';
import { agentArch, agentVersion, openInspector } from '../../agent-version.js';
import { contextFor } from '../../context.js';
import { printAgentPlan, runAgent } from '../../daemons/agent.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

export function registerAgentCommand(program: Command, io: CliIo): Command {
  const cmd = program
    .command('agent')
    // `agent --version` is the agent's; `agent bundle --version 1.2.0` is the subcommand's.
    .enablePositionalOptions()
    .description('run the device agent: enroll with the server, keep its apps at their assigned releases')
    .option('--config <file>', 'YAML configuration file (default: $FLOTILLA_AGENT_CONFIG)')
    .option('--dry-run', 'print the update plan (verified assignment, steps per app) and exit')
    .option('--version', 'print the agent version and exit')
    .option('--arch', 'print the architecture this agent was built for (e.g. amd64, arm64) and exit')
    .option(
      '--profiling [port]',
      'open the Node inspector on 127.0.0.1 only (default port 9229) for CPU and heap profiles',
    )
    .addHelpText('after', '\nThe server URL is the global --server option (or $FLOTILLA_SERVER).');
  // Every configuration key with a flag, from the agent's one declaration of its keys; the server
  // URL is the global --server option.
  for (const option of AGENT_CONFIG.cliOptions)
    if (option.property !== 'server') cmd.option(option.flags, option.description);
  cmd.action(
    async (
      {
        version,
        dryRun,
        arch,
        profiling,
        ...opts
      }: AgentFlags & { version?: boolean; dryRun?: boolean; arch?: boolean; profiling?: boolean | string },
      command: Command,
    ) => {
      if (version) {
        io.stdout.write(`flotilla-agent ${agentVersion()}\n`);
        return;
      }
      if (arch) {
        io.stdout.write(`${agentArch()}\n`);
        return;
      }
      if (profiling !== undefined) io.stderr.write(`${await openInspector(profiling)}\n`);
      const ctx = contextFor(io, command);
      const server = ctx.explicitServer();
      const flags: AgentFlags = { ...opts, ...(server ? { server } : {}) };
      if (dryRun) {
        await printAgentPlan(io, flags, ctx.out.json);
        return;
      }
      await runAgent(io, flags);
    },
  );
  examples(cmd, [
    'flotilla agent --server https://flotilla.example.com --data-dir /var/lib/flotilla-agent \\\n' +
      '      --registration-key-file /etc/flotilla/registration.key --tags lab,arm64',
    'flotilla agent --config /etc/flotilla/agent.yaml --log-file /var/log/flotilla-agent.log',
    'flotilla agent --data-dir /var/lib/flotilla-agent --dry-run --json   # the plan, nothing executed',
  ]);
  return cmd;
}

/**
 * `agent --version` is a flag of `agent`, and commander then takes `--version 1.2.0` after an
 * `agent` subcommand (`agent bundle`, `agent release push`) as that flag and an extra argument:
 * such a pair is passed on as `--version=1.2.0`, which commander gives to the subcommand.
 */
export function joinSubcommandVersion(argv: readonly string[]): string[] {
  const agent = argv.indexOf('agent');
  const sub = argv[agent + 1];
  if (agent < 0 || (sub !== 'bundle' && sub !== 'release')) return [...argv];
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    if (i > agent && arg === '--version' && next !== undefined && !next.startsWith('-')) {
      out.push(`--version=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}
