/**
 * The fleet simulator against a real server process (docs/simulator.md), and deployments as
 * batched background jobs (docs/architecture.md "Assignments"): simulated devices enroll, connect,
 * verify their TUF metadata and report; a deployment larger than one batch answers 202 at once and
 * completes in the background; a server killed after its first batch finishes the job after a
 * restart and assigns no device twice; failures and crash loops are reported as a real agent would.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeployResponse, DeployStatus, Deployment, DeviceList } from '@flotilla/protocol';
import { Fleet } from '@flotilla/sim';
import type { FleetOptions } from '@flotilla/sim';
import { Api, Cluster, cliBin, ADMIN_PASSWORD, freePort, waitFor } from './harness.js';

void describe('fleet simulator and batched deployments (sqlite)', () => {
  const cluster = new Cluster();
  const fleets: Fleet[] = [];
  let api: Api;
  let url: string;
  let port: number;
  let dataDir: string;
  let configDir: string;
  let registrationKey: string;

  function cli(args: string[], input = ''): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
      encoding: 'utf8',
      input,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  async function fleet(tag: string, devices: number, extra: Partial<FleetOptions> = {}): Promise<Fleet> {
    const f = new Fleet({
      serverUrl: url,
      registrationKey,
      devices,
      stateDir: await cluster.tempDir(`flt-sim-${tag}-`),
      tags: [tag],
      ...extra,
    });
    fleets.push(f);
    await f.start();
    assert.ok(await f.connected(60_000), JSON.stringify(f.summary()));
    return f;
  }

  async function status(version: string): Promise<DeployStatus> {
    const r = await api.call<DeployStatus>('GET', `/api/v1/deployments/status?app=web&version=${version}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  }

  async function devices(tag: string): Promise<DeviceList['items']> {
    const r = await api.call<DeviceList>(
      'GET',
      `/api/v1/devices?filter=${encodeURIComponent(`tags==${tag}`)}&limit=100`,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.items;
  }

  async function startServer(env: Record<string, string> = {}) {
    const server = await cluster.startServer({
      dataDir,
      port,
      env: { NODE_ENV: 'test', FLOTILLA_DEPLOY_BATCH_SIZE: '5', ...env },
    });
    url = server.url;
    return server;
  }

  before(async () => {
    dataDir = await cluster.tempDir('flt-server-');
    port = await freePort();
    // The first server dies right after a deployment's first batch commits.
    await startServer({ FLOTILLA_TEST_CRASH_AT: 'deployment.after-batch' });
    api = await Api.login(url);
    configDir = await cluster.tempDir('flt-cli-');
    const keysDir = join(configDir, 'keys');
    assert.equal(
      cli(['login', '--server', url, '--user', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`).code,
      0,
    );
    assert.equal(cli(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]).code, 0);
    const work = await cluster.tempDir('flt-tree-');
    for (const version of ['1.0.0', '2.0.0', '3.0.0']) {
      const dir = join(work, version);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'index.html'), `web ${version}\n`);
      const r = cli([
        'release',
        'push',
        dir,
        '--app',
        'web',
        '--version',
        version,
        '--keys-dir',
        keysDir,
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'sim',
      autoAccept: true,
    });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    registrationKey = key.body.secret;
  });

  after(async () => {
    for (const f of fleets) await f.stop();
    await cluster.cleanup();
  });

  void test('20 simulated devices; a server killed after the first batch finishes the deployment after a restart, assigning no device twice', async () => {
    const sim = await fleet('sim', 20);
    assert.equal(sim.summary().enrolled, 20);
    const before = new Map((await devices('sim')).map((d) => [d.id, d.stateVersion]));
    assert.equal(before.size, 20);
    const server = cluster.procs.find((p) => p.name === 'server')!;
    // The answer may or may not leave before the first batch's commit kills the server.
    const answer = await api
      .call<DeployResponse>('POST', '/api/v1/deployments', {
        app: 'web',
        version: '1.0.0',
        filter: 'tags==sim',
      })
      .catch(() => null);
    if (answer !== null) {
      assert.equal(answer.status, 202, JSON.stringify(answer.body));
      assert.equal(answer.body.deployment.state, 'running');
      assert.equal(answer.body.devices.length, 20);
    }
    await server.exited;
    await startServer();
    const listed = (await status('1.0.0')).deployments ?? [];
    assert.equal(listed.length, 1);
    const id = answer?.body.deployment.id ?? listed[0]?.id;
    assert.ok(id !== undefined, 'the deployment is known after the restart');
    const done = await waitFor('the deployment completes after the restart', async () => {
      const r = await api.call<Deployment>('GET', `/api/v1/deployments/${id}`);
      return r.body.state === 'complete' ? r.body : null;
    });
    assert.deepEqual([done.total, done.assigned, done.processed], [20, 20, 20]);
    const committed = await waitFor(
      'all 20 report committed',
      async () => {
        const s = await status('1.0.0');
        return s.phases.committed === 20 ? s : null;
      },
      90_000,
    );
    assert.deepEqual(committed.phases, { committed: 20 });
    // Each device's state version moved exactly once: assigned once, not again by the resumed job.
    for (const d of await devices('sim')) assert.equal(d.stateVersion, before.get(d.id)! + 1, d.id);
    assert.ok(sim.summary().verified >= 20);
  });

  void test('a deployment of one batch completes within the request; the CLI waits for a larger one', async () => {
    const [first] = await devices('sim');
    const small = await api.call<DeployResponse>('POST', '/api/v1/deployments', {
      app: 'web',
      version: '2.0.0',
      deviceId: first!.id,
    });
    assert.equal(small.status, 200, JSON.stringify(small.body));
    assert.equal(small.body.deployment.state, 'complete');
    const r = cli(['deploy', 'web@2.0.0', '--filter', 'tags==sim', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as DeployResponse;
    assert.equal(res.deployment.state, 'complete');
    assert.equal(res.deployment.assigned, 20);
    await waitFor(
      'all 20 on 2.0.0',
      async () => ((await status('2.0.0')).phases.committed === 20 ? true : null),
      90_000,
    );
    const noWait = cli(['deploy', 'web@3.0.0', '--filter', 'tags==sim', '--no-wait', '--json']);
    assert.equal(noWait.code, 0, noWait.stderr);
    assert.equal((JSON.parse(noWait.stdout) as DeployResponse).deployment.state, 'running');
    await waitFor(
      'all 20 on 3.0.0',
      async () => ((await status('3.0.0')).phases.committed === 20 ? true : null),
      90_000,
    );
  });

  void test('--failure-rate 100%: every install fails with the reason', async () => {
    await fleet('simfail', 6, { failureRate: 1 });
    const r = cli(['deploy', 'web@1.0.0', '--filter', 'tags==simfail', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = await waitFor(
      '6 failed',
      async () => {
        const st = await status('1.0.0');
        return st.phases.failed === 6 ? st : null;
      },
      90_000,
    );
    const failed = s.devices.filter((d) => d.phase === 'failed');
    assert.equal(failed.length, 6);
    for (const d of failed) {
      assert.equal(d.error?.code, 'FLT_RUNTIME_FAILED');
      assert.match(d.error?.message ?? '', /simulated install failure/);
    }
  });

  void test('--crash-after: the app status shows the restarts', async () => {
    const crashing = await fleet('simcrash', 3, { crashAfter: { afterMs: 300, rate: 1 } });
    const r = cli(['deploy', 'web@1.0.0', '--filter', 'tags==simcrash', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const ids = new Set((await devices('simcrash')).map((d) => d.id));
    await waitFor(
      '3 crash-looping apps with restarts',
      async () => {
        const st = await status('1.0.0');
        const looping = st.devices.filter((d) => ids.has(d.deviceId) && (d.process?.restarts ?? 0) >= 2);
        return looping.length === 3 ? looping : null;
      },
      90_000,
    );
    assert.equal(crashing.summary().crashLooping, 3);
  });
});
