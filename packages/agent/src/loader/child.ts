/** The agent as the loader's child process: started from a version directory, its output passed through. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The command every agent release tree provides (docs/agent-lifecycle.md "Release tree"). */
export const AGENT_ENTRY = join('bin', 'flotilla-agent');
const TAIL_BYTES = 1500;

export interface AgentChild {
  readonly pid: number;
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines it wrote to stderr (for the reason of a failed start). */
  tail(): string;
  kill(signal: NodeJS.Signals): void;
  running(): boolean;
}

export function spawnAgent(
  versionDir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  out: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): AgentChild {
  const child: ChildProcess = spawn(join(versionDir, AGENT_ENTRY), [...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  child.stdout?.on('data', (b: Buffer) => out.stdout.write(b));
  child.stderr?.on('data', (b: Buffer) => {
    out.stderr.write(b);
    tail = (tail + b.toString('utf8')).slice(-TAIL_BYTES);
  });
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (e) => {
      tail += `\n${e.message}`;
      done = true;
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  return {
    pid: child.pid ?? -1,
    exited,
    tail: () => tail.trim(),
    kill: (signal) => {
      if (!done) child.kill(signal);
    },
    running: () => !done,
  };
}

/**
 * Kills an agent a previous loader left running (the loader itself was killed): it holds the data
 * directory's lock. Only a process whose command line names the install directory is touched.
 */
export async function killStaleAgent(pidFile: string, installDir: string): Promise<number | null> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return null;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return null;
  }
  if (!cmdline.includes(installDir)) return null;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return null;
  }
  // Until it is reaped, not only dead: the data directory's lock counts a zombie as its holder.
  for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 50));
  return pid;
}
