import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { resolveAgentConfig } from '../../src/config.js';
import type { AgentConfig, AgentFlags } from '../../src/config.js';
import { startAgent } from '../../src/daemon.js';
import type { RunningAgent, StartAgentOptions } from '../../src/daemon.js';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger that keeps every line in memory, for assertions on what an operator would read. */
export function memoryLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as LogLine);
      },
    },
  );
  return { logger, lines };
}

export function agentConfig(
  dataDir: string,
  flags: AgentFlags = {},
  env: Record<string, string> = {},
): AgentConfig {
  return resolveAgentConfig({ flags: { dataDir, pollInterval: '1s', ...flags }, env });
}

export function registrationKeyFile(dir: string, key: string): string {
  const path = join(dir, 'registration.key');
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  return path;
}

export interface TestAgent {
  agent: RunningAgent;
  lines: LogLine[];
}

/** Starts an agent that is stopped when the test ends; backoff jitter fixed at half the window. */
export async function startTestAgent(
  t: TestContext,
  config: AgentConfig,
  options: StartAgentOptions = {},
): Promise<TestAgent> {
  const { logger, lines } = memoryLogger();
  const agent = await startAgent(config, { logger, random: () => 0.5, updates: false, ...options });
  t.after(() => agent.stop());
  return { agent, lines };
}

/** Waits until `condition` holds; fails with `what` if it never does (a hang guard, not a timing assertion). */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  limitMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
