/**
 * Remote access to a compose app end to end (issue 17; docs/containers.md, docs/remote-access.md):
 * a real server, a real agent on a private dockerd, and the CLI. `devices apps` and `devices stats`
 * show each container (state, health, restarts, CPU, memory); a followed log of one service shows a
 * line written after the follow started; restarting one service restarts only its container (same
 * id, new start time; the other service untouched); exec in a container passes its output and exit
 * code on; a tunnel reaches the container's HTTP port.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_PASSWORD, Api, Cluster, cliBin, waitFor } from './harness.js';
import type { Proc } from './harness.js';
import { dockerdAvailable, importBusyboxImage, startTestDockerd } from '@flotilla/testkit';
import type { TestDockerd } from '@flotilla/testkit';

const skip = dockerdAvailable()
  ? false
  : 'dockerd or busybox-static is not installed (.ci/run installs them)';

// No published port: the tunnel is the only way in from the host's loopback.
const COMPOSE = `name: shop
services:
  web:
    image: shop/bb:1
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && echo web up && exec httpd -f -p 8080 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 300ms
      retries: 2
  worker:
    image: shop/bb:1
    command: sh -c 'while true; do sleep 1; done'
`;

interface ServiceRow {
  service: string;
  state: string;
  health: string;
  restarts: number;
  cpuPercent?: number;
  memoryBytes?: number;
  containerId?: string;
  startedAt?: string;
}

void describe('operator commands on a compose app: real server, real agent, real dockerd', { skip }, () => {
  const cluster = new Cluster();
  let d: TestDockerd;
  let api: Api;
  let configDir: string;
  let deviceId: string;
  let agent: Proc;

  function cli(args: string[], input = '') {
    const r = spawnSync(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
      encoding: 'utf8',
      input,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  function spawnCli(name: string, args: string[]): Proc {
    return cluster.spawnCli(name, args, { FLOTILLA_CONFIG_DIR: configDir });
  }

  async function inspect(name: string): Promise<{ Id: string; State: { StartedAt: string } }> {
    return (
      JSON.parse(await d.docker(['inspect', name])) as { Id: string; State: { StartedAt: string } }[]
    )[0]!;
  }

  async function containerOf(service: string): Promise<string> {
    const out = await d.docker([
      'ps',
      '--filter',
      'label=io.flotilla.app=shop',
      '--filter',
      `label=io.flotilla.service=${service}`,
      '--format',
      '{{.Names}}',
    ]);
    const names = out.split('\n').filter(Boolean);
    assert.equal(names.length, 1, out);
    return names[0]!;
  }

  before(async () => {
    d = await startTestDockerd(mkdtempSync(join(tmpdir(), 'flt-dockerd-')));
    await importBusyboxImage(d, 'shop/bb:1');
    const server = await cluster.startServer();
    api = await Api.login(server.url);
    configDir = await cluster.tempDir('flt-cli-');
    const keysDir = join(configDir, 'keys');
    const work = await cluster.tempDir('flt-ctr-remote-');
    const login = cli(
      ['login', '--server', server.url, '--user', 'admin', '--password-stdin'],
      `${ADMIN_PASSWORD}\n`,
    );
    assert.equal(login.code, 0, login.stderr);
    assert.equal(cli(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]).code, 0);
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'ctr-remote',
      autoAccept: true,
    });
    process.env.DOCKER_HOST = d.host;
    agent = (await cluster.startAgent({ server: server.url, registrationKey: key.body.secret })).proc;
    deviceId = await waitFor('the agent enrolled', async () => {
      const r = await api.call<{ items: { id: string; status: string }[] }>('GET', '/api/v1/devices');
      return r.body.items.find((x) => x.status === 'accepted')?.id ?? null;
    });
    await mkdir(join(work, 'src'), { recursive: true });
    await writeFile(join(work, 'src', 'docker-compose.yml'), COMPOSE);
    const push = cli([
      'release',
      'push',
      join(work, 'src'),
      '--app',
      'shop',
      '--version',
      '1.0.0',
      '--compose',
      join(work, 'src', 'docker-compose.yml'),
      '--keys-dir',
      keysDir,
      '--json',
    ]);
    assert.equal(push.code, 0, push.stderr);
    assert.equal(cli(['deploy', 'shop@1.0.0', '--device', deviceId]).code, 0);
    await waitFor(
      'shop committed',
      async () => {
        const r = await api.call<{ items: { app: string; phase: string | null; error: unknown }[] }>(
          'GET',
          `/api/v1/devices/${deviceId}/apps`,
        );
        const a = r.body.items.find((i) => i.app === 'shop');
        if (a?.phase === 'failed' || a?.phase === 'rolled-back') throw new Error(JSON.stringify(a));
        return a?.phase === 'committed';
      },
      120_000,
    );
  });
  after(async () => {
    await cluster.cleanup();
    await d?.destroy();
  });

  void test('devices apps and devices stats show each container: state, health, restarts, CPU, memory', async () => {
    const web = await inspect(await containerOf('web'));
    const apps = cli(['devices', 'apps', deviceId, '--json']);
    assert.equal(apps.code, 0, apps.stderr);
    const shop = (
      JSON.parse(apps.stdout) as { items: { app: string; services?: ServiceRow[] | null }[] }
    ).items.find((a) => a.app === 'shop');
    assert.ok(shop?.services, apps.stdout);
    assert.deepEqual(
      shop.services.map((s) => s.service),
      ['web', 'worker'],
    );
    const webRow = shop.services.find((s) => s.service === 'web')!;
    assert.equal(webRow.state, 'running');
    assert.equal(webRow.health, 'healthy');
    assert.equal(webRow.restarts, 0);
    assert.equal(webRow.containerId, web.Id);
    assert.ok(webRow.memoryBytes !== undefined && webRow.memoryBytes > 0, JSON.stringify(webRow));
    assert.ok(webRow.cpuPercent !== undefined && webRow.cpuPercent >= 0, JSON.stringify(webRow));
    assert.equal(shop.services.find((s) => s.service === 'worker')!.health, 'none');

    const table = cli(['devices', 'apps', deviceId]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /web\s+running\s+healthy\s+0\s/);
    assert.match(table.stdout, /worker\s+running\s+none\s+0\s/);
    assert.match(table.stdout, /MiB/);

    const stats = cli(['devices', 'stats', deviceId, '--app', 'shop', '--json']);
    assert.equal(stats.code, 0, stats.stderr);
    const rows = (JSON.parse(stats.stdout) as { services: ServiceRow[] }).services;
    assert.deepEqual(
      rows.map((s) => [s.service, s.state, s.health]),
      [
        ['web', 'running', 'healthy'],
        ['worker', 'running', 'none'],
      ],
    );
  });

  void test('a followed log of one service shows a line written after the follow started', async () => {
    const follow = spawnCli('logs', [
      'devices',
      'logs',
      deviceId,
      '--app',
      'shop',
      '--service',
      'web',
      '-f',
      '--json',
    ]);
    try {
      await waitFor('the tail', () => Promise.resolve(follow.output().includes('web up')));
      const marker = `marker-${randomBytes(6).toString('hex')}`;
      // Written to the container's main process's stdout: the container log.
      await d.docker(['exec', await containerOf('web'), 'sh', '-c', `echo ${marker} > /proc/1/fd/1`]);
      await waitFor('the new line, followed', () => Promise.resolve(follow.output().includes(marker)));
      const line = follow
        .output()
        .split('\n')
        .find((l) => l.includes(marker) && l.startsWith('{'));
      const parsed = JSON.parse(line!) as { service?: string; stream: string; text: string };
      assert.equal(parsed.text, marker);
      assert.equal(parsed.service, 'web');
      assert.equal(parsed.stream, 'stdout');
    } finally {
      await cluster.stop(follow, 'SIGINT');
    }
  });

  void test('restart of one service restarts only its container: same id, new start time', async () => {
    const webName = await containerOf('web');
    const workerName = await containerOf('worker');
    const web = await inspect(webName);
    const worker = await inspect(workerName);
    // A follow started before the restart goes on with the restarted container.
    const follow = spawnCli('logs-across', [
      'devices',
      'logs',
      deviceId,
      '--app',
      'shop',
      '--service',
      'web',
      '-f',
      '--tail',
      '0',
      '--json',
    ]);
    try {
      const before: string[] = [];
      await waitFor('the follow is attached', async () => {
        before.push(`before-${randomBytes(4).toString('hex')}`);
        await d.docker(['exec', webName, 'sh', '-c', `echo ${before.at(-1)} > /proc/1/fd/1`]);
        return before.some((m) => follow.output().includes(m));
      });
      const r = cli(['devices', 'restart', deviceId, '--app', 'shop', '--service', 'web', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const marker = `after-${randomBytes(6).toString('hex')}`;
      await d.docker(['exec', webName, 'sh', '-c', `echo ${marker} > /proc/1/fd/1`]);
      await waitFor('the line written after the restart, followed', () =>
        Promise.resolve(follow.output().includes(marker)),
      );
      assert.equal(follow.child.exitCode, null, 'the follow is still running');
      // Nothing is sent twice when the follow attaches again.
      const lines = follow.output().split('\n');
      for (const m of [...before, marker])
        assert.ok(lines.filter((l) => l.includes(m)).length <= 1, `${m} once: ${follow.output()}`);
    } finally {
      await cluster.stop(follow, 'SIGINT');
    }
    const webAfter = await inspect(webName);
    assert.equal(webAfter.Id, web.Id, 'the container is restarted, not recreated');
    assert.notEqual(webAfter.State.StartedAt, web.State.StartedAt);
    const workerAfter = await inspect(workerName);
    assert.equal(workerAfter.Id, worker.Id);
    assert.equal(workerAfter.State.StartedAt, worker.State.StartedAt, 'the other service is untouched');
    const wrong = cli(['devices', 'restart', deviceId, '--app', 'shop', '--service', 'nope']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /FLT_NOT_FOUND/);
  });

  void test('exec in a container prints its output and exits with its code', () => {
    const r = cli([
      'devices',
      'exec',
      deviceId,
      '--app',
      'shop',
      '--service',
      'web',
      '--',
      'sh',
      '-c',
      'echo hi; exit 3',
    ]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'hi\n');
    // Large output arrives whole before the exit code; stdin reaches the command whole.
    const big = spawnSync(
      process.execPath,
      [
        cliBin,
        'devices',
        'exec',
        deviceId,
        '--app',
        'shop',
        '--service',
        'web',
        '--',
        'sh',
        '-c',
        'head -c 8000000 /dev/zero; exit 0',
      ],
      { env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir }, input: '', maxBuffer: 64 * 1024 * 1024 },
    );
    assert.equal(big.status, 0, big.stderr.toString());
    assert.equal(big.stdout.length, 8_000_000);
    const input = randomBytes(3_000_000);
    const counted = spawnSync(
      process.execPath,
      [cliBin, 'devices', 'exec', deviceId, '--app', 'shop', '--service', 'web', '--', 'busybox', 'wc', '-c'],
      { env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir }, input, encoding: 'utf8' },
    );
    assert.equal(counted.status, 0, counted.stderr);
    assert.equal(counted.stdout.trim(), String(input.length));
    const both = cli(['devices', 'exec', deviceId, '--app', 'shop', '--', 'true']);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /FLT_VALIDATION/);
  });

  void test("a tunnel reaches the container's HTTP port", async () => {
    const proc = spawnCli('tunnel', [
      'tunnel',
      deviceId,
      '8080',
      '--app',
      'shop',
      '--service',
      'web',
      '--local',
      '0',
      '--json',
    ]);
    try {
      const port = await waitFor('the tunnel listens', () => {
        if (proc.child.exitCode !== null) throw new Error(`tunnel exited: ${proc.output()}`);
        const m = /"local":\s*{[^}]*"port":\s*(\d+)/.exec(proc.output());
        return Promise.resolve(m ? Number(m[1]) : null);
      });
      const body = await waitFor('the web service answers through the tunnel', () =>
        fetch(`http://127.0.0.1:${port}/`).then(
          async (r) => (r.ok ? (await r.text()).trim() : null),
          () => null,
        ),
      );
      assert.equal(body, 'hello-from-web');
    } finally {
      await cluster.stop(proc);
    }
  });

  void test('with the agent stopped, devices apps still lists the app and says why its services are not read', async () => {
    await cluster.stop(agent);
    const r = await waitFor('the device is offline', () => {
      const x = cli(['devices', 'apps', deviceId, '--json']);
      assert.equal(x.code, 0, x.stderr);
      const shop = (
        JSON.parse(x.stdout) as {
          items: { app: string; services: unknown; servicesError?: { code: string } }[];
        }
      ).items.find((a) => a.app === 'shop');
      return Promise.resolve(shop?.servicesError ? shop : null);
    });
    assert.equal(r.services, null);
    assert.equal(r.servicesError?.code, 'FLT_DEVICE_OFFLINE');
    const table = cli(['devices', 'apps', deviceId]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /shop\s+1\.0\.0\s+1\.0\.0\s+committed/);
    assert.match(table.stderr, /shop: services not read: FLT_DEVICE_OFFLINE/);
  });
});
