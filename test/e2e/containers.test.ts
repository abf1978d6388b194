/**
 * Compose apps end to end (issue 17, docs/containers.md): `release push --compose` through the CLI,
 * a real server, a real agent on a private dockerd. A two-service app (HTTP server with a
 * healthcheck, worker, named volume) is deployed and answers; v2 changes the worker only and the
 * web container keeps its id and start time; the volume's data survives; v3's healthcheck fails
 * and the agent rolls back by itself to the old containers; unsupported compose keys are refused
 * at push time with the list.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_PASSWORD, Api, Cluster, cliBin, waitFor } from './harness.js';
import { dockerdAvailable, freePort, importBusyboxImage, startTestDockerd } from '@flotilla/testkit';
import type { TestDockerd } from '@flotilla/testkit';

interface DeviceApp {
  app: string;
  desired: string | null;
  current: string | null;
  phase: string | null;
  error: { code: string; message: string } | null;
}

const FINAL = new Set(['committed', 'failed', 'rolled-back']);
const skip = dockerdAvailable()
  ? false
  : 'dockerd or busybox-static is not installed (.ci/run installs them)';

function compose(port: number, o: { message: string; worker: string; failingHealth?: boolean }): string {
  const health = o.failingHealth
    ? '["CMD", "false"]'
    : '["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]';
  return `name: shop
services:
  web:
    image: shop/bb:1
    command: ["sh", "-c", "mkdir -p /www && echo \\"$$MSG\\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    environment:
      MSG: ${o.message}
    ports: ["127.0.0.1:${port}:8080"]
    volumes: ["data:/data"]
    restart: unless-stopped
    healthcheck:
      test: ${health}
      interval: 300ms
      retries: 2
  worker:
    image: shop/bb:1
    command: sh -c 'while true; do echo tick; sleep 1; done'
    environment: ["W=${o.worker}"]
    volumes: ["data:/data"]
    depends_on:
      web: { condition: service_healthy }
volumes:
  data: {}
`;
}

void describe(
  'compose apps through the CLI, a real server and a real agent on a real dockerd',
  { skip },
  () => {
    const cluster = new Cluster();
    let d: TestDockerd;
    let api: Api;
    let configDir: string;
    let keysDir: string;
    let work: string;
    let deviceId: string;
    let port: number;
    const targets = new Map<string, string>();

    function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
      const r = spawnSync(process.execPath, [cliBin, ...args], {
        env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir, DOCKER_HOST: d.host },
        encoding: 'utf8',
        input: '',
      });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    }

    async function push(version: string, file: string): Promise<void> {
      await writeFile(join(work, 'src', 'docker-compose.yml'), file);
      const r = cli([
        'release',
        'push',
        join(work, 'src'),
        '--app',
        'shop',
        '--version',
        version,
        '--compose',
        join(work, 'src', 'docker-compose.yml'),
        '--keys-dir',
        keysDir,
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      targets.set(version, (JSON.parse(r.stdout) as { targetPath: string }).targetPath);
    }

    function app(): DeviceApp {
      const r = cli(['devices', 'apps', deviceId, '--no-services', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const found = (JSON.parse(r.stdout) as { items: DeviceApp[] }).items.find((a) => a.app === 'shop');
      assert.ok(found, r.stdout);
      return found;
    }

    async function deploy(version: string): Promise<DeviceApp> {
      const r = cli(['deploy', `shop@${version}`, '--device', deviceId]);
      assert.equal(r.code, 0, r.stderr);
      const target = targets.get(version);
      return waitFor(
        `shop settled at ${version}`,
        () => {
          const a = app();
          return Promise.resolve(a.desired === target && a.phase !== null && FINAL.has(a.phase) ? a : null);
        },
        120_000,
      );
    }

    async function body(): Promise<string> {
      return waitFor('the web service answers', () =>
        fetch(`http://127.0.0.1:${port}/`).then(
          async (r) => (await r.text()).trim(),
          () => null,
        ),
      );
    }

    async function inspect(name: string): Promise<{ Id: string; State: { StartedAt: string } }> {
      return (
        JSON.parse(await d.docker(['inspect', name])) as { Id: string; State: { StartedAt: string } }[]
      )[0]!;
    }

    async function ours(): Promise<string[]> {
      const out = await d.docker([
        'ps',
        '-a',
        '--filter',
        'label=io.flotilla.app=shop',
        '--format',
        '{{.Names}}',
      ]);
      return out.split('\n').filter(Boolean).sort();
    }

    before(async () => {
      d = await startTestDockerd(mkdtempSync(join(tmpdir(), 'flt-dockerd-')));
      await importBusyboxImage(d, 'shop/bb:1');
      const server = await cluster.startServer();
      api = await Api.login(server.url);
      configDir = await cluster.tempDir('flt-cli-');
      keysDir = join(configDir, 'keys');
      work = await cluster.tempDir('flt-ctr-');
      port = await freePort();
      await mkdir(join(work, 'src'), { recursive: true });
      const login = spawnSync(
        process.execPath,
        [cliBin, 'login', '--server', server.url, '--user', 'admin', '--password-stdin'],
        {
          input: `${ADMIN_PASSWORD}\n`,
          env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
          encoding: 'utf8',
        },
      );
      assert.equal(login.status, 0, login.stderr);
      assert.equal(cli(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]).code, 0);
      const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
        name: 'ctr',
        autoAccept: true,
      });
      // The agent's engine: DOCKER_HOST of its environment.
      process.env.DOCKER_HOST = d.host;
      await cluster.startAgent({ server: server.url, registrationKey: key.body.secret });
      deviceId = await waitFor('the agent enrolled', async () => {
        const r = await api.call<{ items: { id: string; status: string }[] }>('GET', '/api/v1/devices');
        return r.body.items.find((x) => x.status === 'accepted')?.id ?? null;
      });
    });
    after(async () => {
      await cluster.cleanup();
      await d?.destroy();
    });

    void test('deploy, partial update, volume, automatic rollback to the old containers', async () => {
      await push('1.0.0', compose(port, { message: 'one', worker: 'a' }));
      const first = await deploy('1.0.0');
      assert.equal(first.phase, 'committed', JSON.stringify(first));
      assert.equal(await body(), 'one');
      const names = await ours();
      assert.equal(names.length, 2, JSON.stringify(names));
      const [web, worker] = names as [string, string];
      assert.match(web, /-shop-web$/);
      await d.docker(['exec', worker, 'sh', '-c', 'echo kept > /data/keep']);
      const webBefore = await inspect(web);
      const workerBefore = await inspect(worker);

      await push('1.1.0', compose(port, { message: 'one', worker: 'b' }));
      const second = await deploy('1.1.0');
      assert.equal(second.phase, 'committed', JSON.stringify(second));
      assert.deepEqual(await ours(), names);
      const webAfter = await inspect(web);
      assert.equal(webAfter.Id, webBefore.Id, 'web is not recreated');
      assert.equal(webAfter.State.StartedAt, webBefore.State.StartedAt);
      assert.notEqual((await inspect(worker)).Id, workerBefore.Id, 'the worker is recreated');
      assert.equal((await d.docker(['exec', worker, 'cat', '/data/keep'])).trim(), 'kept');

      await push('2.0.0', compose(port, { message: 'two', worker: 'b', failingHealth: true }));
      const third = await deploy('2.0.0');
      assert.equal(third.phase, 'rolled-back', JSON.stringify(third));
      assert.equal(third.error?.code, 'FLT_HEALTH_CHECK_FAILED');
      assert.equal(third.current, targets.get('1.1.0'));
      assert.equal(await body(), 'one');
      assert.equal((await inspect(web)).Id, webBefore.Id, 'the old web container serves again');
      assert.deepEqual(await ours(), names, 'no container of the failed release is left');
      assert.equal((await d.docker(['exec', worker, 'cat', '/data/keep'])).trim(), 'kept');
    });

    void test('push refuses compose keys the runtime does not support, listing them, and uploads nothing', async () => {
      const file = `services:\n  web:\n    image: shop/bb:1\n    privileged: true\n    build: .\nnetworks:\n  front: {}\n`;
      await writeFile(join(work, 'src', 'docker-compose.yml'), file);
      const r = cli([
        'release',
        'push',
        join(work, 'src'),
        '--app',
        'shop',
        '--version',
        '9.0.0',
        '--compose',
        join(work, 'src', 'docker-compose.yml'),
        '--keys-dir',
        keysDir,
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /FLT_VALIDATION/);
      for (const key of ['networks', 'services.web.privileged', 'services.web.build'])
        assert.match(r.stderr, new RegExp(key.replace(/\./g, '\\.')));
      const releases = await api.call<{ items?: { app: string; version: string }[] }>(
        'GET',
        '/api/v1/releases',
      );
      assert.equal(releases.status, 200);
      assert.ok(!(releases.body.items ?? []).some((x) => x.app === 'shop' && x.version === '9.0.0'));
    });
  },
);
