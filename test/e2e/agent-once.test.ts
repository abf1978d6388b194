/**
 * Timer mode and --update-on-start (issue 20, docs/agent-lifecycle.md "Timer mode"), with real
 * processes: the bundle installed by the server's install script with `--mode timer` into a fresh
 * root; each run of the launcher with `FLOTILLA_LOADER_ARGS=--once` (what flotilla-agent-update.timer
 * starts) is one update pass of the agent under the loader, after which both exit with the pass's
 * status; and `flotilla agent --update-on-start` applies its assignment before its session settles
 * and then keeps running.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Api } from './harness.js';
import { Cluster, cliBin, runCli, startAgentBundleServer, waitFor } from './harness.js';

interface DeployStatus {
  devices: { deviceId: string; current: string | null; phase: string | null }[];
}

void describe('agent timer mode (loader --once) and --update-on-start', () => {
  const cluster = new Cluster();
  let api: Api;
  let url: string;
  let configDir: string;
  let keysDir: string;
  let work: string;
  let root: string;
  let deviceId: string;
  const installDir = () => join(root, 'opt', 'flotilla-agent');
  const dataDir = () => join(root, 'var', 'lib', 'flotilla-agent');

  const cli = (args: string[]) => runCli(configDir, args);

  /** One update pass, as flotilla-agent-update.service runs it; resolves with its status and output. */
  function pass(): Promise<{ code: number | null; out: string }> {
    const child = spawn(
      join(installDir(), 'bin', 'flotilla-loader-launch'),
      [
        '--',
        '--server',
        url,
        '--data-dir',
        dataDir(),
        '--registration-key-file',
        join(root, 'etc', 'flotilla-agent', 'registration.key'),
        '--log-format',
        'json',
      ],
      { env: { ...process.env, FLOTILLA_LOADER_ARGS: '--once' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    return new Promise((resolve) =>
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      }),
    );
  }

  async function pushFiles(version: string, postInstall?: string[]): Promise<string> {
    const src = join(work, `src-${version}`);
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'hello.txt'), `hello ${version}\n`);
    const config = join(work, `config-${version}.json`);
    await writeFile(config, JSON.stringify({ files: postInstall ? { postInstall } : {} }));
    const r = cli([
      'release',
      'push',
      src,
      '--app',
      'hello',
      '--version',
      version,
      '--runtime',
      'files',
      '--config-file',
      config,
      '--keys-dir',
      keysDir,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const d = cli(['deploy', `hello@${version}`, '--device', deviceId]);
    assert.equal(d.code, 0, d.stderr);
    return (JSON.parse(r.stdout) as { targetPath: string }).targetPath;
  }

  async function status(version: string) {
    const r = await api.call<DeployStatus>(
      'GET',
      `/api/v1/deployments/status?app=hello&version=${encodeURIComponent(version)}`,
    );
    return r.body.devices.find((d) => d.deviceId === deviceId);
  }

  before(async () => {
    ({ work, root, configDir, keysDir, url, api } = await startAgentBundleServer(
      cluster,
      'flt-once-',
      'bundle',
    ));
  });
  after(() => cluster.cleanup());

  void test('install.sh --mode timer installs for update passes; a pass enrolls the device and exits 0', async () => {
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'once',
      autoAccept: true,
    });
    const script = await (await fetch(`${url}/install.sh`)).text();
    const bad = spawnSync('sh', ['-s', '--', '--registration-key', 'k', '--mode', 'cron', '--root', root], {
      input: script,
      encoding: 'utf8',
    });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--mode is service or timer, not cron/);
    const install = spawnSync(
      'sh',
      ['-s', '--', '--registration-key', key.body.secret, '--mode', 'timer', '--root', root],
      { input: script, encoding: 'utf8' },
    );
    assert.equal(install.status, 0, install.stderr + install.stdout);
    assert.match(install.stdout, /run an update pass with: FLOTILLA_LOADER_ARGS=--once /);
    const first = await pass();
    assert.equal(first.code, 0, first.out.slice(-3000));
    assert.match(first.out, /the update pass \(--once\) is done; stopping/);
    assert.match(first.out, /the agent finished its update pass/);
    const devices = await api.call<{ items: { id: string; status: string }[] }>('GET', '/api/v1/devices');
    deviceId = devices.body.items.find((d) => d.status === 'accepted')?.id ?? '';
    assert.ok(deviceId, JSON.stringify(devices.body));
    // Nothing stays running between passes.
    assert.equal(existsSync(join(installDir(), 'run', 'agent.pid')), false);
  });

  void test('a pass installs what was deployed since the last one, reports it, and exits 0', async () => {
    const target = await pushFiles('1.0.0');
    assert.equal((await status('1.0.0'))?.phase, 'assigned', 'nothing applied between passes');
    const run = await pass();
    assert.equal(run.code, 0, run.out.slice(-3000));
    const device = await status('1.0.0');
    assert.equal(device?.phase, 'committed', JSON.stringify(device));
    assert.equal(device?.current, target);
    assert.equal(
      await readFile(join(dataDir(), 'apps', 'hello', 'current', 'hello.txt'), 'utf8'),
      'hello 1.0.0\n',
    );
  });

  void test('a pass whose update fails exits 1 with FLT_DEPLOY_FAILED; the server shows the failure', async () => {
    await pushFiles('2.0.0', ['sh', '-c', 'echo post-install refuses >&2; exit 1']);
    const run = await pass();
    assert.equal(run.code, 1, run.out.slice(-3000));
    assert.match(run.out, /FLT_DEPLOY_FAILED/);
    const device = await status('2.0.0');
    assert.ok(device?.phase === 'rolled-back' || device?.phase === 'failed', JSON.stringify(device));
    assert.equal(
      await readFile(join(dataDir(), 'apps', 'hello', 'current', 'hello.txt'), 'utf8'),
      'hello 1.0.0\n',
    );
  });

  void test('agent --update-on-start applies its assignment before the session settles, then keeps running', async () => {
    await pushFiles('3.0.0');
    const agent = spawn(
      process.execPath,
      [
        cliBin,
        'agent',
        '--server',
        url,
        '--data-dir',
        dataDir(),
        '--update-on-start',
        '--log-format',
        'json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    agent.stdout.on('data', (b: Buffer) => (out += b.toString()));
    agent.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((r) => agent.once('exit', (code) => r(code)));
    try {
      await waitFor('the update pass at start', () =>
        Promise.resolve(/update pass done: every app is at its assignment/.test(out) ? true : null),
      );
      const messages = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { msg: string }).msg);
      const before = messages.indexOf('checking for updates before the session settles');
      const applied = messages.findIndex((m) => m === 'update plan finished');
      const done = messages.findIndex((m) => m.startsWith('update pass done'));
      assert.ok(before >= 0 && before < applied && applied < done, messages.join('\n'));
      assert.equal((await status('3.0.0'))?.phase, 'committed');
      assert.equal(agent.exitCode, null, 'the agent keeps running after the pass');
    } finally {
      agent.kill('SIGTERM');
      assert.equal(await exited, 0, out.slice(-2000));
    }
  });
});
