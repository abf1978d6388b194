import { FLOTILLA_VERSION } from '@flotilla/protocol';
import type { Command } from 'commander';
import { AGENT_CONFIG } from '@flotilla/agent';
import type { AgentFlags } from '@flotilla/agent';
import { contextFor } from '../../context.js';
import { printAgentPlan, runAgent } from '../../daemons/agent.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

export function registerAgentCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('agent')
    .description('run the device agent: enroll with the server, keep its apps at their assigned releases')
    .option('--config <file>', 'YAML configuration file (default: $FLOTILLA_AGENT_CONFIG)')
    .option('--dry-run', 'print the update plan (verified assignment, steps per app) and exit')
    .option('--version', 'print the agent version and exit')
    .addHelpText('after', '\nThe server URL is the global --server option (or $FLOTILLA_SERVER).');
  // Every configuration key with a flag, from the agent's one declaration of its keys; the server
  // URL is the global --server option.
  for (const option of AGENT_CONFIG.cliOptions)
    if (option.property !== 'server') cmd.option(option.flags, option.description);
  cmd.action(
    async (
      { version, dryRun, ...opts }: AgentFlags & { version?: boolean; dryRun?: boolean },
      command: Command,
    ) => {
      if (version) {
        io.stdout.write(`flotilla-agent ${FLOTILLA_VERSION}\n`);
        return;
      }
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
}
