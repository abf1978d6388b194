import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { ProcessRuntime } from '../../src/runtimes/process-runtime.js';
import { readLogTail } from '../../src/runtimes/rotating-log.js';
import { AppLayout } from '../../src/apply/layout.js';
import type { ReleaseSpec } from '../../src/model/release.js';
import { freePort, tempDir } from '@flotilla/testkit';
import { quietLogger } from '../update/fixtures.js';
import { APP_SOURCE } from './app-source.js';

async function setup(t: TestContext, processConfig: (port: number) => Record<string, unknown>) {
  const layout = new AppLayout(tempDir(t));
  const port = await freePort();
  const release: ReleaseSpec = {
    app: 'web',
    version: '1',
    runtime: 'process',
    root: 'a'.repeat(64),
    targetPath: `web/1/${'a'.repeat(64)}`,
    config: { process: processConfig(port) },
  };
  const ctx = layout.context(release);
  mkdirSync(ctx.releaseDir, { recursive: true });
  writeFileSync(join(ctx.releaseDir, 'app.cjs'), APP_SOURCE);
  const runtime = new ProcessRuntime(quietLogger());
  t.after(() => runtime.close());
  runtime.validate(release);
  return { runtime, ctx, port, signal: new AbortController().signal };
}

const base = (port: number, env: Record<string, string> = {}) => ({
  command: [process.execPath, './app.cjs'],
  env: { PORT: String(port), ...env },
});

void test('health by HTTP URL, TCP port and command pass for a serving app; logs are kept', async (t) => {
  for (const kind of ['http', 'tcp', 'command'] as const) {
    const { runtime, ctx, signal } = await setup(t, (port) => ({
      ...base(port),
      command: [process.execPath, join('.', 'app.cjs')].map((a, i) => (i === 1 ? './app.cjs' : a)),
      health:
        kind === 'http'
          ? { http: `http://127.0.0.1:${port}/healthz`, windowMs: 3_000, intervalMs: 50 }
          : kind === 'tcp'
            ? { tcp: { port }, windowMs: 3_000, intervalMs: 50 }
            : {
                command: [
                  process.execPath,
                  '-e',
                  `require('net').connect(${port}).on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`,
                ],
                windowMs: 3_000,
                intervalMs: 50,
              },
    }));
    await runtime.start(ctx);
    await runtime.health(ctx, signal);
    await runtime.stop(ctx.app, ctx.appDir);
    assert.match(readFileSync(join(ctx.logDir, 'stdout.log'), 'utf8'), /listening/);
    assert.equal(existsSync(join(ctx.appDir, 'process.pid')), false);
  }
});

void test('an unhealthy app fails the health window with the probe reason', async (t) => {
  const { runtime, ctx, signal } = await setup(t, (port) => ({
    ...base(port, { UNHEALTHY: '1' }),
    health: { http: `http://127.0.0.1:${port}/healthz`, windowMs: 3_000, intervalMs: 50 },
  }));
  await runtime.start(ctx);
  await assert.rejects(runtime.health(ctx, signal), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'FLT_HEALTH_CHECK_FAILED');
    assert.match(e.message, /HTTP 500/);
    return true;
  });
});

void test('a crash loop is restarted with growing backoff and fails the health window with the exit', async (t) => {
  const { runtime, ctx, signal } = await setup(t, (port) => ({
    ...base(port, { CRASH: '1' }),
    restart: { policy: 'always', initialDelayMs: 20, maxDelayMs: 80 },
    health: { tcp: { port }, windowMs: 5_000, intervalMs: 20 },
  }));
  await runtime.start(ctx);
  await assert.rejects(
    runtime.health(ctx, signal),
    /exited during the health window \(exit code 7\): crashing on purpose/,
  );
  const supervisor = runtime.supervisorOf('web');
  assert.ok(supervisor);
  while (supervisor.exits < 4) await new Promise((r) => setTimeout(r, 20));
  // Backoff doubles per consecutive failure, capped at maxDelayMs.
  assert.equal(supervisor.nextDelayMs(), 80);
  assert.match(readLogTail(join(ctx.logDir, 'stderr.log'), 10_000), /crashing on purpose/);
});

void test('stop sends SIGTERM, then SIGKILL after the stop timeout to a process that ignores it', async (t) => {
  const { runtime, ctx, signal } = await setup(t, (port) => ({
    ...base(port, { IGNORE_TERM: '1' }),
    stopTimeoutMs: 200,
    health: { tcp: { port }, windowMs: 3_000, intervalMs: 20 },
  }));
  await runtime.start(ctx);
  await runtime.health(ctx, signal);
  const supervisor = runtime.supervisorOf('web');
  await runtime.stop(ctx.app, ctx.appDir);
  assert.equal(supervisor?.lastExit?.signal, 'SIGKILL');
  assert.match(readFileSync(join(ctx.logDir, 'stdout.log'), 'utf8'), /ignoring SIGTERM/);
});

void test('a process left by a killed agent is stopped through its pid file', async (t) => {
  const first = await setup(t, (port) => ({
    ...base(port),
    health: { tcp: { port }, windowMs: 3_000, intervalMs: 20 },
  }));
  await first.runtime.start(first.ctx);
  await first.runtime.health(first.ctx, first.signal);
  const pid = Number(readFileSync(join(first.ctx.appDir, 'process.pid'), 'utf8').split(' ')[0]);
  // A new runtime (a restarted agent) knows nothing of it but the pid file.
  const second = new ProcessRuntime(quietLogger());
  await second.stop(first.ctx.app, first.ctx.appDir);
  // Gone, or a zombie that only its parent (this test process) has yet to reap.
  const state = existsSync(`/proc/${pid}/stat`)
    ? readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0]
    : 'gone';
  assert.ok(state === 'gone' || state === 'Z', `process state ${state}`);
});

void test('stdout is rotated by size, keeping the configured number of files', async (t) => {
  const { runtime, ctx, signal } = await setup(t, (port) => ({
    ...base(port, { NOISE: '400' }),
    logs: { maxBytes: 4096, keep: 2 },
    health: { tcp: { port }, windowMs: 3_000, intervalMs: 20 },
  }));
  await runtime.start(ctx);
  await runtime.health(ctx, signal);
  await runtime.stop(ctx.app, ctx.appDir);
  const names = readdirSync(ctx.logDir)
    .filter((n) => n.startsWith('stdout'))
    .sort();
  assert.deepEqual(names, ['stdout.log', 'stdout.log.1', 'stdout.log.2']);
  for (const name of names) assert.ok(readFileSync(join(ctx.logDir, name)).length <= 4096, name);
  assert.match(readLogTail(join(ctx.logDir, 'stdout.log'), 100_000, 2), /line 399/);
});

void test('an invalid process configuration is refused with the problems listed', (t) => {
  const runtime = new ProcessRuntime(quietLogger());
  t.after(() => runtime.close());
  assert.throws(
    () =>
      runtime.validate({
        app: 'web',
        version: '1',
        runtime: 'process',
        root: 'a'.repeat(64),
        targetPath: 'x',
        config: { process: { command: [], cwd: '../etc' } },
      }),
    (e: Error & { code?: string }) =>
      e.code === 'FLT_VALIDATION' && /command/.test(e.message) && /cwd/.test(e.message),
  );
});

void test('without a health check, a process that exits within the default window fails it', async (t) => {
  const { runtime, ctx, signal } = await setup(t, (port) => ({
    ...base(port, { CRASH: '1' }),
    restart: { policy: 'always', initialDelayMs: 20, maxDelayMs: 80 },
  }));
  await runtime.start(ctx);
  await assert.rejects(runtime.health(ctx, signal), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'FLT_HEALTH_CHECK_FAILED');
    assert.match(e.message, /exited during the health window \(exit code 7\)/);
    return true;
  });
});

void test('the process status counts restarts and keeps the last exit; changes are signalled', async (t) => {
  const layout = new AppLayout(tempDir(t));
  const release: ReleaseSpec = {
    app: 'job',
    version: '1',
    runtime: 'process',
    root: 'b'.repeat(64),
    targetPath: `job/1/${'b'.repeat(64)}`,
    config: {
      process: {
        command: [process.execPath, '-e', 'setTimeout(() => process.exit(5), 50)'],
        restart: { policy: 'on-failure', initialDelayMs: 20, maxDelayMs: 40 },
        health: { windowMs: 0 },
      },
    },
  };
  const ctx = layout.context(release);
  mkdirSync(ctx.releaseDir, { recursive: true });
  const changes: string[] = [];
  const runtime = new ProcessRuntime(quietLogger(), null, (app) => changes.push(app));
  t.after(() => runtime.close());
  assert.equal(runtime.status('job'), null);
  await runtime.start(ctx);
  await runtime.health(ctx, new AbortController().signal); // a window of 0: committed at once
  while ((runtime.status('job')?.restarts ?? 0) < 2) await new Promise((r) => setTimeout(r, 20));
  const status = runtime.status('job');
  assert.ok(status);
  assert.deepEqual([status.lastExit?.code, status.lastExit?.signal], [5, null]);
  assert.ok(Date.parse(status.lastExit?.at ?? '') > 0 && Date.parse(status.since) > 0);
  assert.ok(changes.length >= 4 && changes.every((a) => a === 'job'), String(changes));
  await runtime.stop('job', ctx.appDir);
  assert.equal(runtime.status('job'), null);
});
