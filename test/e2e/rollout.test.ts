/**
 * A staged rollout end to end (docs/rollouts.md): a real server and two real agents; `flotilla
 * rollout create` starts a two-wave rollout with a soak period, `rollout watch --json` follows it
 * until it completes, each agent installed the release and counted as a success only after its
 * soak, and `rollout why` explains a device.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN_PASSWORD, Api, Cluster, cliBin, waitFor } from './harness.js';

interface Wave {
  size: number;
  state: string;
  counts: { notified: number; soaking: number; succeeded: number };
}
interface Rollout {
  id: string;
  state: string;
  matched: number;
  waves: Wave[];
  stats: { installP50Ms: number | null };
}

void describe('a staged rollout to two real agents', () => {
  const cluster = new Cluster();
  let api: Api;
  let configDir: string;
  let work: string;
  const agents = new Map<string, string>();

  function cli(args: string[], timeout = 120_000): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
      encoding: 'utf8',
      input: '',
      timeout,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  before(async () => {
    const server = await cluster.startServer();
    api = await Api.login(server.url);
    configDir = await cluster.tempDir('flt-cli-');
    work = await cluster.tempDir('flt-rollout-');
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
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'rollout',
      tags: ['ro'],
      autoAccept: true,
    });
    const dirs = new Map<string, string>();
    for (let i = 0; i < 2; i++) {
      const a = await cluster.startAgent({
        server: server.url,
        registrationKey: key.body.secret,
        facts: { name: `ro-${i}` },
      });
      dirs.set(`ro-${i}`, a.dataDir);
    }
    await waitFor(
      'two agents enrolled',
      async () => {
        const r = await api.call<{ items: { id: string; facts: Record<string, unknown> }[] }>(
          'GET',
          `/api/v1/devices?filter=${encodeURIComponent('tags==ro;status==accepted')}`,
        );
        for (const d of r.body.items) agents.set(d.id, dirs.get(String(d.facts.name))!);
        return agents.size === 2;
      },
      60_000,
    );
    const keysDir = join(configDir, 'keys');
    assert.equal(cli(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]).code, 0);
    await mkdir(join(work, 'src'), { recursive: true });
    await writeFile(join(work, 'src', 'index.html'), '<h1>rollout</h1>\n');
    await writeFile(join(work, 'config.json'), JSON.stringify({ files: {} }));
    const pushed = cli([
      'release',
      'push',
      join(work, 'src'),
      '--app',
      'web',
      '--version',
      '1.0.0',
      '--config-file',
      join(work, 'config.json'),
      '--keys-dir',
      keysDir,
      '--json',
    ]);
    assert.equal(pushed.code, 0, pushed.stderr);
  });
  after(() => cluster.cleanup());

  void test('two waves with a soak: each agent installs, soaks, succeeds; the rollout completes', async () => {
    const created = cli([
      'rollout',
      'create',
      '--release',
      'web@1.0.0',
      '--filter',
      'tags==ro',
      '--waves',
      '1,100%',
      '--soak',
      '2s',
      '--json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const r = JSON.parse(created.stdout) as Rollout;
    assert.equal(r.matched, 2);
    const watched = cli(['rollout', 'watch', r.id, '--json', '--interval', '500ms']);
    assert.equal(watched.code, 0, watched.stderr);
    const lines = watched.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Rollout);
    const final = lines.at(-1)!;
    assert.equal(final.state, 'completed');
    assert.deepEqual(
      final.waves.map((w) => w.counts.succeeded),
      [1, 1],
    );
    assert.notEqual(final.stats.installP50Ms, null);
    // Wave 2 never ran before wave 1 had succeeded.
    for (const l of lines)
      if (l.waves[1]!.counts.notified + l.waves[1]!.counts.soaking + l.waves[1]!.counts.succeeded > 0)
        assert.equal(l.waves[0]!.counts.succeeded, 1);
    for (const [id, dir] of agents) {
      assert.equal(
        (await readFile(join(dir, 'apps', 'web', 'current', 'index.html'), 'utf8')).trim(),
        '<h1>rollout</h1>',
      );
      const why = cli(['rollout', 'why', r.id, id]);
      assert.equal(why.code, 0, why.stderr);
      assert.match(why.stdout, /succeeded at .* after a 2s healthy soak/);
    }
  });
});
