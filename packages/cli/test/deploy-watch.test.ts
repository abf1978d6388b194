/**
 * `deploy status --watch` against an HTTP server that answers the status route with a scripted
 * sequence of states (as the real server's do while a device updates): it follows the release
 * until every device has finished, one JSON line per change with --json, and fails when a device did.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { DeployStatus, DeployStatusDevice } from '@flotilla/protocol';
import { cli } from './helpers/memory-io.js';

const TARGET = `web/1.0.0/${'a'.repeat(64)}`;
const DEVICE = 'd'.repeat(32);

function status(device: Partial<DeployStatusDevice>): DeployStatus {
  const d: DeployStatusDevice = {
    deviceId: DEVICE,
    desired: TARGET,
    current: null,
    phase: 'assigned',
    bytesDone: null,
    bytesTotal: null,
    bytesFetched: null,
    error: null,
    updatedAt: new Date(0).toISOString(),
    process: null,
  };
  Object.assign(d, device);
  return {
    app: 'web',
    version: '1.0.0',
    targetPath: TARGET,
    phases: { [d.phase ?? 'assigned']: 1 },
    devices: [d],
  };
}

/** Serves `states` in order (repeating the last) on the deploy status route; counts the requests. */
async function statusServer(
  states: DeployStatus[],
): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let served = 0;
  const server = createServer((req, res) => {
    assert.match(req.url ?? '', /^\/api\/v1\/deployments\/status\?app=web&version=1\.0\.0/);
    const body = states[Math.min(served, states.length - 1)];
    served += 1;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => served,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const watch = (url: string, extra: string[] = []) =>
  cli(['--server', url, 'deploy', 'status', 'web@1.0.0', '--watch', '--interval', '10ms', ...extra], {
    env: { FLOTILLA_TOKEN: 'flt_at_test' },
  });

void test('--watch --json prints one line per change until the device has committed', async (t) => {
  const states = [
    status({ phase: 'assigned' }),
    status({ phase: 'downloading', bytesDone: 10, bytesTotal: 100 }),
    status({ phase: 'downloading', bytesDone: 10, bytesTotal: 100 }),
    status({ phase: 'downloading', bytesDone: 100, bytesTotal: 100 }),
    status({ phase: 'starting', bytesDone: 100, bytesTotal: 100 }),
    status({ phase: 'committed', current: TARGET, bytesDone: 100, bytesTotal: 100 }),
  ];
  const srv = await statusServer(states);
  t.after(() => srv.close());
  const res = await watch(srv.url, ['--json']);
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as DeployStatusDevice & { app: string });
  assert.deepEqual(
    lines.map((l) => [l.phase, l.bytesDone]),
    [
      ['assigned', null],
      ['downloading', 10],
      ['downloading', 100],
      ['starting', 100],
      ['committed', 100],
    ],
  );
  assert.equal(lines[0]?.app, 'web');
  assert.equal(srv.requests(), states.length, 'it stopped asking once done');
});

void test('--watch exits 1 with FLT_DEPLOY_FAILED when the device failed, naming its error', async (t) => {
  const srv = await statusServer([
    status({ phase: 'verifying' }),
    status({
      phase: 'failed',
      error: { code: 'FLT_VALIDATION', message: 'invalid files runtime configuration' },
    }),
  ]);
  t.after(() => srv.close());
  const res = await watch(srv.url);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /dddddddddddd {2}verifying, running -/);
  assert.match(res.stderr, /error \[FLT_DEPLOY_FAILED\]: web@1\.0\.0 failed on 1 of 1 devices/);
  assert.match(res.stderr, / {2}- dddddddddddd: failed FLT_VALIDATION: invalid files runtime configuration/);
});

void test('--watch gives up after --timeout, and refuses to wait for a release no device is assigned', async (t) => {
  const stuck = await statusServer([status({ phase: 'downloading', bytesDone: 1, bytesTotal: 100 })]);
  t.after(() => stuck.close());
  const res = await watch(stuck.url, ['--timeout', '50ms']);
  assert.equal(res.code, 1);
  assert.match(res.stderr, /error \[FLT_DEVICE_TIMEOUT\]/);
  const empty = await statusServer([
    { app: 'web', version: '1.0.0', targetPath: TARGET, phases: {}, devices: [] },
  ]);
  t.after(() => empty.close());
  const none = await watch(empty.url);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /error \[FLT_NOT_FOUND\]: no device is assigned web@1\.0\.0/);
});
