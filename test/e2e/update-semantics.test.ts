/**
 * What a new user hits after the first deployment (issue 14), end to end through the CLI, a real
 * server and a real agent running a process app:
 *
 * - a release with the tree of the running one (a config-only change, a version bump) is
 *   installed: the app restarts with the new config, nothing is downloaded, `committed` is reported;
 * - after an operator's rollback (and a later automatic one) `devices apps` and `deploy status`
 *   show the release the device really runs;
 * - a process app without a health check that exits during the health window fails the update
 *   (rolled back), and after a commit its restarts and last exit are shown in `devices apps`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN_PASSWORD, Api, Cluster, cliBin, waitFor } from './harness.js';
import { freePort } from '@flotilla/testkit';

interface ProcessStatus {
  state: string;
  since: string;
  restarts: number;
  lastExit: { code: number | null; signal: string | null; at: string } | null;
}
interface DeviceApp {
  app: string;
  desired: string | null;
  current: string | null;
  phase: string | null;
  bytesFetched: number | null;
  error: { code: string; message: string } | null;
  process: ProcessStatus | null;
}
interface DeployStatus {
  phases: Record<string, number>;
  devices: (Omit<DeviceApp, 'app'> & { deviceId: string })[];
}

/** Answers its MODE on PORT; CRASH=1 exits at once with 7; EXIT_AFTER_MS=n exits with 3 after n ms. */
const APP = `const mode = process.env.MODE;
if (process.env.CRASH === '1') { console.error('crashing on purpose'); process.exit(7); }
if (process.env.EXIT_AFTER_MS) setTimeout(() => process.exit(3), Number(process.env.EXIT_AFTER_MS));
require('node:http').createServer((q, s) => s.end(String(mode))).listen(Number(process.env.PORT), '127.0.0.1');
`;

const FINAL = new Set(['committed', 'failed', 'rolled-back']);

void describe('update semantics through the CLI, a real server and a real agent', () => {
  const cluster = new Cluster();
  let api: Api;
  let url: string;
  let configDir: string;
  let keysDir: string;
  let work: string;
  let deviceId: string;
  let port: number;
  const targets = new Map<string, string>();

  function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
      encoding: 'utf8',
      input: '',
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  function json<T>(args: string[]): T {
    const r = cli([...args, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  }

  /**
   * Pushes api@version with this process config; the tree is the app and a TREE file holding
   * `tree`, so releases of the same `tree` have the same root object.
   */
  async function push(
    version: string,
    tree: string,
    env: Record<string, string>,
    extra: Record<string, unknown> = {},
  ) {
    await writeFile(join(work, 'src', 'TREE'), tree);
    const config = {
      process: {
        command: [process.execPath, './app.cjs'],
        env: { PORT: String(port), ...env },
        restart: { initialDelayMs: 100, maxDelayMs: 200 },
        stopTimeoutMs: 2000,
        ...extra,
      },
    };
    const file = join(work, `config-${version}.json`);
    await writeFile(file, JSON.stringify(config));
    const r = json<{ targetPath: string }>([
      'release',
      'push',
      join(work, 'src'),
      '--app',
      'api',
      '--version',
      version,
      '--runtime',
      'process',
      '--config-file',
      file,
      '--keys-dir',
      keysDir,
    ]);
    targets.set(version, r.targetPath);
    return r.targetPath;
  }

  function apps(): DeviceApp {
    const list = json<{ items: DeviceApp[] }>(['devices', 'apps', deviceId]);
    const app = list.items.find((a) => a.app === 'api');
    assert.ok(app, JSON.stringify(list));
    return app;
  }

  async function settled(targetPath: string): Promise<DeviceApp> {
    return waitFor(
      `api settled at ${targetPath}`,
      () => {
        const a = apps();
        return Promise.resolve(a.desired === targetPath && a.phase !== null && FINAL.has(a.phase) ? a : null);
      },
      90_000,
    );
  }

  async function deploy(version: string): Promise<DeviceApp> {
    const d = cli(['deploy', `api@${version}`, '--device', deviceId]);
    assert.equal(d.code, 0, d.stderr);
    return settled(targets.get(version)!);
  }

  async function answer(): Promise<string> {
    return waitFor('the app answers', () =>
      fetch(`http://127.0.0.1:${port}/`).then(
        (r) => r.text(),
        () => null,
      ),
    );
  }

  async function objectsServed(): Promise<number> {
    const text = await (await fetch(`${url}/metrics`)).text();
    let total = 0;
    for (const m of text.matchAll(/^flotilla_objects_served_total(?:\{[^}]*\})? (\d+)/gm))
      total += Number(m[1]);
    return total;
  }

  before(async () => {
    const server = await cluster.startServer();
    url = server.url;
    api = await Api.login(url);
    configDir = await cluster.tempDir('flt-cli-');
    keysDir = join(configDir, 'keys');
    work = await cluster.tempDir('flt-sem-');
    port = await freePort();
    const login = spawnSync(
      process.execPath,
      [cliBin, 'login', '--server', url, '--user', 'admin', '--password-stdin'],
      {
        input: `${ADMIN_PASSWORD}\n`,
        env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
        encoding: 'utf8',
      },
    );
    assert.equal(login.status, 0, login.stderr);
    assert.equal(cli(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]).code, 0);
    const src = join(work, 'src');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'app.cjs'), APP);
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'sem',
      autoAccept: true,
    });
    await cluster.startAgent({ server: url, registrationKey: key.body.secret });
    deviceId = await waitFor('the agent enrolled', async () => {
      const r = await api.call<{ items: { id: string; status: string }[] }>('GET', '/api/v1/devices');
      return r.body.items.find((d) => d.status === 'accepted')?.id ?? null;
    });
  });
  after(() => cluster.cleanup());

  void test('a config-only change and a version bump of the same tree are installed, with nothing downloaded', async () => {
    await push('1.0.0', 'a', { MODE: 'one' }, { health: { windowMs: 1000 } });
    const first = await deploy('1.0.0');
    assert.equal(first.phase, 'committed', JSON.stringify(first));
    assert.equal(await answer(), 'one');

    // One environment variable changed, same tree.
    await push('1.0.1', 'a', { MODE: 'two' }, { health: { windowMs: 1000 } });
    const served = await objectsServed();
    const second = await deploy('1.0.1');
    assert.equal(second.phase, 'committed', JSON.stringify(second));
    assert.equal(second.current, targets.get('1.0.1'));
    assert.equal(second.bytesFetched, 0, 'nothing fetched for an unchanged tree');
    assert.equal(await objectsServed(), served, 'the server served no object');
    assert.equal(await answer(), 'two', 'the app runs with the new config');

    // A version bump with the same tree and config.
    await push('1.0.2', 'a', { MODE: 'two' }, { health: { windowMs: 1000 } });
    const third = await deploy('1.0.2');
    assert.equal(third.phase, 'committed', JSON.stringify(third));
    assert.equal(third.current, targets.get('1.0.2'));
    assert.equal(await objectsServed(), served);
  });

  void test("an operator's rollback is shown as it is in devices apps and deploy status", async () => {
    // Releases with trees of their own, so that this holds whatever the test above found.
    await push('2.0.0', '2.0.0', { MODE: 'two-oh' }, { health: { windowMs: 1000 } });
    assert.equal((await deploy('2.0.0')).phase, 'committed');
    await push('2.1.0', '2.1.0', { MODE: 'two-one' }, { health: { windowMs: 1000 } });
    assert.equal((await deploy('2.1.0')).phase, 'committed');
    assert.equal(await answer(), 'two-one');
    const r = cli(['devices', 'rollback', deviceId, '--app', 'api']);
    assert.equal(r.code, 0, r.stderr);
    const back = await waitFor('the rollback reported', () => {
      const a = apps();
      return Promise.resolve(a.phase === 'rolled-back' ? a : null);
    });
    assert.equal(back.current, targets.get('2.0.0'), 'devices apps shows the release that runs');
    assert.equal(back.desired, targets.get('2.1.0'));
    assert.equal(back.error?.code, 'FLT_ROLLED_BACK_BY_OPERATOR');
    assert.equal(await answer(), 'two-oh');
    const status = json<DeployStatus>(['deploy', 'status', 'api@2.1.0']);
    assert.deepEqual(status.phases, { 'rolled-back': 1 });
    assert.equal(status.devices[0]?.current, targets.get('2.0.0'));
    const human = cli(['deploy', 'status', 'api@2.1.0']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /rolled-back 1/);
    assert.match(human.stdout, /rolled-back\s+2\.0\.0\s/);
    const table = cli(['devices', 'apps', deviceId]);
    assert.match(table.stdout, /api\s+2\.0\.0\s+2\.1\.0\s+rolled-back/);
  });

  void test('a process that exits during the health window (no check configured) fails the update and rolls back', async () => {
    await push('2.2.0', '2.2.0', { MODE: 'crash', CRASH: '1' });
    const failed = await deploy('2.2.0');
    assert.equal(failed.phase, 'rolled-back', JSON.stringify(failed));
    assert.equal(failed.error?.code, 'FLT_HEALTH_CHECK_FAILED');
    assert.match(failed.error?.message ?? '', /exit code 7/);
    assert.equal(failed.current, targets.get('2.0.0'), 'after an automatic rollback too, what runs is shown');
    assert.equal(await answer(), 'two-oh');
    const status = json<DeployStatus>(['deploy', 'status', 'api@2.2.0']);
    assert.equal(status.devices[0]?.current, targets.get('2.0.0'));
  });

  void test('after a commit, restarts and the last exit of a crash-looping process are shown', async () => {
    await push('3.0.0', '3.0.0', { MODE: 'loop', EXIT_AFTER_MS: '2500' }, { health: { windowMs: 1000 } });
    const committed = await deploy('3.0.0');
    assert.equal(committed.phase, 'committed', JSON.stringify(committed));
    const looping = await waitFor(
      'restarts reported',
      () => {
        const p = apps().process;
        return Promise.resolve(p && p.restarts >= 2 && p.lastExit !== null ? p : null);
      },
      60_000,
    );
    assert.equal(looping.lastExit?.code, 3);
    assert.equal(looping.lastExit?.signal, null);
    assert.ok(!Number.isNaN(Date.parse(looping.lastExit?.at ?? '')));
    assert.ok(!Number.isNaN(Date.parse(looping.since)));
    assert.match(looping.state, /^(running|restarting)$/);
    const table = cli(['devices', 'apps', deviceId]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /RESTARTS/);
    assert.match(table.stdout, /LAST EXIT/);
    assert.match(table.stdout, /code 3/);
  });
});
