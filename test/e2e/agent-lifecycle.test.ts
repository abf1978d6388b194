/**
 * The agent's own lifecycle (issue 20, docs/agent-lifecycle.md), with real processes: the
 * self-contained bundle is installed by the server's install script into a fresh root directory,
 * the loader runs it and it enrolls; a deployment of the app flotilla-agent updates it; a release
 * whose agent exits at start is switched back by the loader within its window, and the server shows
 * the rollback with the loader's reason; a SIGKILL of the loader mid-switch leaves a working agent
 * once the loader starts again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Api } from './harness.js';
import { Cluster, runCli, startAgentBundleServer, waitFor } from './harness.js';

interface DeployStatus {
  devices: {
    deviceId: string;
    current: string | null;
    phase: string | null;
    error: { message: string } | null;
  }[];
}
interface LoaderState {
  phase: string;
  current: string | null;
  failed: Record<string, string>;
}

const FINAL = new Set(['committed', 'failed', 'rolled-back']);

void describe('agent lifecycle: install script, loader, agent releases', () => {
  const cluster = new Cluster();
  let api: Api;
  let url: string;
  let configDir: string;
  let keysDir: string;
  let work: string;
  let root: string;
  let deviceId: string;
  let launcher: { child: ChildProcess; output: () => string; exited: Promise<number | null> } | null = null;
  const targets = new Map<string, string>();
  const installDir = () => join(root, 'opt', 'flotilla-agent');

  const cli = (args: string[], env: Record<string, string> = {}) => runCli(configDir, args, env);

  function startLoader() {
    const dataDir = join(root, 'var', 'lib', 'flotilla-agent');
    const child = spawn(
      join(installDir(), 'bin', 'flotilla-loader-launch'),
      [
        '--',
        '--server',
        url,
        '--data-dir',
        dataDir,
        '--registration-key-file',
        join(root, 'etc', 'flotilla-agent', 'registration.key'),
        '--poll-interval',
        '2s',
        '--log-format',
        'json',
      ],
      {
        env: { ...process.env, FLOTILLA_LOADER_ARGS: '--health-window 20s --log-format json' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    const keep = (b: Buffer) => {
      out = (out + b.toString()).slice(-400_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    launcher = { child, output: () => out, exited };
    return launcher;
  }

  async function loaderState(): Promise<LoaderState> {
    return JSON.parse(await readFile(join(installDir(), 'loader-state.json'), 'utf8')) as LoaderState;
  }

  /** The bundle of this checkout as version `version`; `broken`: its agent exits at start (its probe works). */
  async function bundle(version: string, broken = false): Promise<string> {
    const dir = join(work, `bundle-${version}`);
    const r = cli(['agent', 'bundle', '--out', dir, '--version', version]);
    assert.equal(r.code, 0, r.stderr);
    if (broken) {
      const wrapper = join(dir, 'bin', 'flotilla-agent');
      const text = await readFile(wrapper, 'utf8');
      await writeFile(
        wrapper,
        text.replace(
          'here=',
          'if [ "$1" = agent ]; then echo "this agent release is broken on purpose" >&2; exit 3; fi\nhere=',
        ),
      );
    }
    return dir;
  }

  function pushAgent(version: string, dir: string): void {
    const r = cli([
      'agent',
      'release',
      'push',
      '--version',
      version,
      '--bundle',
      dir,
      '--keys-dir',
      keysDir,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    targets.set(version, (JSON.parse(r.stdout) as { targetPath: string }).targetPath);
  }

  async function deployed(version: string): Promise<DeployStatus['devices'][number]> {
    const d = cli(['deploy', `flotilla-agent@${version}`, '--device', deviceId]);
    assert.equal(d.code, 0, d.stderr);
    return waitFor(
      `flotilla-agent@${version} settled`,
      async () => {
        const r = await api.call<DeployStatus>(
          'GET',
          `/api/v1/deployments/status?app=flotilla-agent&version=${encodeURIComponent(version)}`,
        );
        const device = r.body.devices.find((d) => d.deviceId === deviceId);
        return device?.phase && FINAL.has(device.phase) ? device : null;
      },
      180_000,
    );
  }

  async function currentVersion(): Promise<string> {
    return (await readlink(join(installDir(), 'current'))).replace(/^versions\//, '');
  }

  before(async () => {
    ({ work, root, configDir, keysDir, url, api } = await startAgentBundleServer(
      cluster,
      'flt-lifecycle-',
      'bundle-1.0.0',
    ));
  });
  after(async () => {
    if (launcher && launcher.child.exitCode === null) {
      // The launcher is a shell loop: the loader it runs stops its agent on SIGTERM and exits 0,
      // and the launcher with it.
      const pid = launcher.child.pid!;
      const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
      const loaders = children.trim().split(/\s+/).filter(Boolean).map(Number);
      for (const loader of loaders) process.kill(loader, 'SIGTERM');
      if (loaders.length === 0) launcher.child.kill('SIGTERM');
      await launcher.exited;
    }
    await cluster.cleanup();
  });

  void test('the install script installs the bundle into a fresh root; the loader runs it and it enrolls', async () => {
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'lifecycle',
      autoAccept: true,
    });
    const script = await fetch(`${url}/install.sh`);
    assert.equal(script.status, 200);
    const text = await script.text();
    assert.ok(text.includes(`server='${url}'`), 'the script names this server');
    const install = spawnSync('sh', ['-s', '--', '--registration-key', key.body.secret, '--root', root], {
      input: text,
      encoding: 'utf8',
    });
    assert.equal(install.status, 0, install.stderr + install.stdout);
    assert.equal(await currentVersion(), '1.0.0');
    startLoader();
    deviceId = await waitFor('the installed agent enrolled', async () => {
      const r = await api.call<{ items: { id: string; status: string }[] }>('GET', '/api/v1/devices');
      return r.body.items.find((d) => d.status === 'accepted')?.id ?? null;
    });
    const missing = await fetch(`${url}/downloads/agent/nothing-here.tar.gz`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'FLT_NOT_FOUND');
  });

  void test('a deployment of flotilla-agent 2.0.0 updates the agent through the loader', async () => {
    pushAgent('2.0.0', await bundle('2.0.0'));
    const device = await deployed('2.0.0');
    assert.equal(device.phase, 'committed', JSON.stringify(device));
    assert.equal(device.current, targets.get('2.0.0'));
    assert.equal(await currentVersion(), '2.0.0');
    const state = await loaderState();
    assert.equal(state.phase, 'idle');
    assert.equal(state.current, '2.0.0');
  });

  void test('an agent release that exits at start is switched back within the window, and the server shows why', async () => {
    pushAgent('3.0.0', await bundle('3.0.0', true));
    const device = await deployed('3.0.0');
    assert.equal(device.phase, 'rolled-back', JSON.stringify(device));
    assert.match(device.error?.message ?? '', /exited \(code 3\) before it reached the server/);
    assert.match(device.error?.message ?? '', /broken on purpose/);
    assert.equal(device.current, targets.get('2.0.0'));
    assert.equal(await currentVersion(), '2.0.0');
    const audit = await api.call<{ items: { action: string; details: { error?: { message: string } } }[] }>(
      'GET',
      '/api/v1/audit?limit=50',
    );
    assert.ok(
      audit.body.items.some(
        (e) => e.action === 'update.rolled-back' && /broken on purpose/.test(e.details.error?.message ?? ''),
      ),
      JSON.stringify(audit.body.items.map((e) => e.action)),
    );
    // The bundle ships the delta rebuild worker: 2.0.0 → 3.0.0 came as deltas (the bundled
    // JavaScript changed), rebuilt on worker threads, not on the agent's main thread.
    const lines = launcher!
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; app?: string; deltaFiles?: number });
    const fetched = lines.findLast((l) => l.msg === 'release fetched' && l.app === 'flotilla-agent');
    assert.ok((fetched?.deltaFiles ?? 0) > 0, JSON.stringify(fetched));
    assert.ok(
      !lines.some((l) => /rebuilding on the main thread/.test(l.msg ?? '')),
      'the rebuild workers started in the bundle',
    );
  });

  void test('a SIGKILL of the loader mid-switch leaves a working agent after it starts again', async () => {
    pushAgent('4.0.0', await bundle('4.0.0'));
    const d = cli(['deploy', 'flotilla-agent@4.0.0', '--device', deviceId]);
    assert.equal(d.code, 0, d.stderr);
    await waitFor(
      'the loader is trying 4.0.0',
      async () => {
        const state = await loaderState().catch(() => null);
        return state !== null && state.phase === 'trial' && state.current === '4.0.0';
      },
      180_000,
    );
    const running = launcher!;
    const children = (
      await readFile(`/proc/${running.child.pid}/task/${running.child.pid}/children`, 'utf8')
    ).trim();
    const loaderPid = Number(children.split(/\s+/)[0]);
    assert.ok(loaderPid > 1, `the launcher's child: ${children}`);
    process.kill(loaderPid, 'SIGKILL');
    assert.equal(await running.exited, 137);
    startLoader();
    const device = await waitFor(
      '4.0.0 committed after the loader restarted',
      async () => {
        const r = await api.call<DeployStatus>(
          'GET',
          '/api/v1/deployments/status?app=flotilla-agent&version=4.0.0',
        );
        const found = r.body.devices.find((x) => x.deviceId === deviceId);
        return found?.phase && FINAL.has(found.phase) ? found : null;
      },
      180_000,
    );
    assert.equal(device.phase, 'committed', JSON.stringify(device) + launcher!.output().slice(-3000));
    assert.equal(await currentVersion(), '4.0.0');
    assert.equal((await loaderState()).phase, 'idle');
  });
});
