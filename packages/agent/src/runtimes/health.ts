/** Health probes (HTTP URL, TCP port, command) and the health window that runs them. */
import { connect } from 'node:net';
import { FlotillaError } from '@flotilla/protocol';
import type { HealthCheckConfig } from '@flotilla/protocol';
import { nodeFetch } from '../util/node-fetch.js';
import { sleep } from '../util/sleep.js';
import { describeFailure, runCommand } from './run-command.js';

export const HEALTH_DEFAULTS = { intervalMs: 500, timeoutMs: 2000, windowMs: 10_000 } as const;

export type ProbeResult = { ok: true } | { ok: false; reason: string };

export async function probe(
  check: HealthCheckConfig,
  options: { cwd: string; env: NodeJS.ProcessEnv; signal: AbortSignal },
): Promise<ProbeResult> {
  const timeoutMs = check.timeoutMs ?? HEALTH_DEFAULTS.timeoutMs;
  if (check.http !== undefined) {
    try {
      const response = await nodeFetch(check.http, {
        signal: AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)]),
        redirect: 'manual',
      });
      await response.body?.cancel();
      if (response.status < 200 || response.status > 299)
        return { ok: false, reason: `GET ${check.http}: HTTP ${response.status}` };
    } catch (e) {
      return { ok: false, reason: `GET ${check.http}: ${(e as Error).message}` };
    }
  }
  if (check.tcp !== undefined) {
    const { port, host = '127.0.0.1' } = check.tcp;
    const error = await new Promise<string | null>((resolve) => {
      const socket = connect({ port, host, timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve(null);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve('timed out');
      });
      socket.once('error', (e) => resolve(e.message));
    });
    if (error !== null) return { ok: false, reason: `TCP ${host}:${port}: ${error}` };
  }
  if (check.command !== undefined) {
    const result = await runCommand(check.command, { ...options, timeoutMs });
    if (result.code !== 0) return { ok: false, reason: describeFailure(check.command, result) };
  }
  return { ok: true };
}

/**
 * The health window (docs/updates.md): the probe must pass, and the app must not fail (`failure()`
 * returns a reason once it exited or restarted) until `windowMs` has passed.
 */
export async function healthWindow(
  check: HealthCheckConfig | undefined,
  options: { cwd: string; env: NodeJS.ProcessEnv; signal: AbortSignal; failure: () => string | null },
): Promise<void> {
  const windowMs = check?.windowMs ?? (check ? HEALTH_DEFAULTS.windowMs : 0);
  const intervalMs = check?.intervalMs ?? HEALTH_DEFAULTS.intervalMs;
  const deadline = performance.now() + windowMs;
  let passed = check === undefined || !hasProbe(check);
  let last = 'no probe ran';
  for (;;) {
    if (options.signal.aborted)
      throw new FlotillaError('FLT_HEALTH_CHECK_FAILED', 'health check interrupted');
    const failed = options.failure();
    if (failed !== null) throw new FlotillaError('FLT_HEALTH_CHECK_FAILED', failed);
    if (!passed && check) {
      const result = await probe(check, options);
      if (result.ok) passed = true;
      else last = result.reason;
    }
    if (performance.now() >= deadline) break;
    await sleep(Math.min(intervalMs, Math.max(1, deadline - performance.now())), options.signal);
  }
  const failed = options.failure();
  if (failed !== null) throw new FlotillaError('FLT_HEALTH_CHECK_FAILED', failed);
  if (!passed) {
    throw new FlotillaError(
      'FLT_HEALTH_CHECK_FAILED',
      `the health check did not pass within ${windowMs} ms: ${last}`,
      {
        details: { windowMs, last },
      },
    );
  }
}

function hasProbe(check: HealthCheckConfig): boolean {
  return check.http !== undefined || check.tcp !== undefined || check.command !== undefined;
}
