/**
 * Runs the device agent in this process with the CLI's logger (stdout, or `--log-file`). The agent
 * package is loaded only here.
 */
import type { AgentFlags } from '@flotilla/agent';
import type { CliIo } from '../io.js';
import { chooseLogFormat, createLogger } from '../process/logger.js';
import { handleShutdownSignals } from '../process/signals.js';

export async function runAgent(io: CliIo, flags: AgentFlags): Promise<void> {
  const { resolveAgentConfig, startAgent } = await import('@flotilla/agent');
  const config = resolveAgentConfig({ flags, env: { ...io.env } });
  const isTTY = !config.logFile && io.stdout.isTTY === true;
  const logger = await createLogger({
    level: config.logLevel,
    format: chooseLogFormat(flags.logFormat ?? io.env.FLOTILLA_LOG_FORMAT, config.logFormat, isTTY),
    destination: config.logFile ? { file: config.logFile } : io.stdout,
    color: isTTY,
  });
  const starting = startAgent(config, { logger });
  starting.catch(() => undefined); // awaited below
  // Listening before the agent starts: a signal while it starts stops it once it is up, where the
  // default action would end the process with its data directory still locked.
  const shutdown = handleShutdownSignals({
    signals: io.signals,
    exit: io.exit,
    log: (message) => logger.info(message),
    stop: async () => (await starting).stop(),
  });
  let agent: Awaited<typeof starting>;
  try {
    agent = await starting;
  } catch (error) {
    shutdown.dispose();
    throw error;
  }
  // An offline agent (or one between retries) may have nothing pending for a while: the process
  // stays up until the agent ends, not until Node runs out of work (exit code 13).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    // The agent may also end by itself (e.g. its device was revoked); a failure is the exit status.
    await Promise.race([shutdown.stopped, agent.done]);
  } finally {
    clearInterval(keepAlive);
    shutdown.dispose();
  }
}

/**
 * `flotilla agent --dry-run`: what the agent would do now (verify the assignment, then per app the
 * planned steps), printed as a table or `--json`, without executing anything.
 */
export async function printAgentPlan(io: CliIo, flags: AgentFlags, json: boolean): Promise<void> {
  const { resolveAgentConfig, dryRunUpdates, formatDryRun } = await import('@flotilla/agent');
  const config = resolveAgentConfig({ flags, env: { ...io.env } });
  const result = await dryRunUpdates(config);
  io.stdout.write(formatDryRun(result, json));
}
