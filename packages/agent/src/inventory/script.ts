/**
 * Runs one inventory script: no shell, no stdin, a time limit and an output cap. The script runs in
 * its own process group so that a timeout also kills whatever it started.
 */
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { parseScriptOutput } from './parse.js';
import type { Parsed } from './parse.js';

export interface ScriptLimits {
  timeoutMs: number;
  maxOutputBytes: number;
}

const STDERR_KEEP_BYTES = 2048;

export function runInventoryScript(path: string, limits: ScriptLimits): Promise<Parsed> {
  return new Promise((resolve) => {
    let settled = false;
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    const child = spawn(path, [], {
      cwd: dirname(path),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      shell: false,
      env: scriptEnvironment(),
    });
    const finish = (result: Parsed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killGroup(child.pid);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => finish({ ok: false, reason: `timed out after ${limits.timeoutMs}ms` }),
      limits.timeoutMs,
    );
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > limits.maxOutputBytes)
        finish({ ok: false, reason: `printed more than ${limits.maxOutputBytes} bytes` });
      else stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < STDERR_KEEP_BYTES)
        stderr += chunk.toString('utf8').slice(0, STDERR_KEEP_BYTES - stderr.length);
    });
    child.on('error', (err: NodeJS.ErrnoException) =>
      finish({ ok: false, reason: `cannot run: ${err.code ?? err.message}` }),
    );
    child.on('close', (code, signal) => {
      if (code !== 0) {
        const why = signal ? `killed by ${signal}` : `exited with status ${code}`;
        return finish({ ok: false, reason: stderr.trim() ? `${why}: ${stderr.trim()}` : why });
      }
      const text = Buffer.concat(stdout).toString('utf8');
      finish(
        text.includes('\uFFFD') ? { ok: false, reason: 'output is not UTF-8 text' } : parseScriptOutput(text),
      );
    });
  });
}

function killGroup(pid: number | undefined) {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is already gone.
  }
}

/** The agent's environment minus its secrets: scripts are site code, not part of the trust base. */
function scriptEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, FLOTILLA_INVENTORY: '1' };
  delete env.FLOTILLA_REGISTRATION_KEY;
  return env;
}
