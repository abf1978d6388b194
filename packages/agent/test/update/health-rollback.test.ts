import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, tempDir } from '@flotilla/testkit';
import { APP_SOURCE } from '../runtimes/app-source.js';
import { harness } from './engine-harness.js';
import { buildRelease, serverStore, writeTree } from './fixtures.js';

const APP = APP_SOURCE;

/** Polls until the app answers (it was just started), up to about 6 s. */
async function serving(port: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/x`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 30));
  }
  return false;
}

void test('process app: v2 failing its health window rolls back automatically with the reason; v1 serves again', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const port = await freePort();
  const config = (env: Record<string, string>) => ({
    process: {
      command: [process.execPath, './app.cjs'],
      env: { PORT: String(port), ...env },
      restart: { initialDelayMs: 20, maxDelayMs: 100 },
      stopTimeoutMs: 2000,
      health: { http: `http://127.0.0.1:${port}/healthz`, windowMs: 3_000, intervalMs: 30 },
    },
  });
  const v1 = await buildRelease(store, writeTree(join(base, 'v1'), { 'app.cjs': APP, VERSION: '1' }), {
    app: 'web',
    version: '1',
    runtime: 'process',
    config: config({}),
  });
  const v2 = await buildRelease(store, writeTree(join(base, 'v2'), { 'app.cjs': APP, VERSION: '2' }), {
    app: 'web',
    version: '2',
    runtime: 'process',
    config: config({ CRASH: '1' }),
  });
  const h = await harness(t, store);
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  assert.equal((await fetch(`http://127.0.0.1:${port}/x`)).status, 200);

  h.assign([v2]);
  assert.equal(await h.converge(), true);
  const rolled = h.reports.find((r) => r.phase === 'rolled-back');
  assert.equal(rolled?.targetPath, v2.targetPath);
  assert.equal(rolled?.error?.code, 'FLT_HEALTH_CHECK_FAILED');
  assert.match(rolled?.error?.message ?? '', /exit code 7/);
  const installed = h.engine.records.installed('web');
  assert.equal(installed.current?.root, v1.root);
  assert.equal(installed.held?.root, v2.root);
  assert.equal(await serving(port), true, 'v1 serves again');

  // The operator's restart action brings the same release back up.
  await h.engine.restart('web', new AbortController().signal);
  assert.equal(await serving(port), true);
});
