/**
 * Foundation, end to end: a real server process and three real agent processes (separate data dirs)
 * enroll with one registration key; their facts and tags are visible through the API and the CLI;
 * RSQL filters select the right devices — on SQLite and on PostgreSQL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { arch as osArch } from 'node:os';
import { Api, Cluster, cliBin, ADMIN_PASSWORD, waitFor } from './harness.js';

interface DeviceView {
  id: string;
  status: string;
  hostname: string | null;
  tags: string[];
  facts: Record<string, unknown>;
  online: boolean;
}

const nodeArchToFact: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };

for (const dialect of ['sqlite', 'postgres'] as const) {
  void describe(`fleet of three agents (${dialect})`, () => {
    const cluster = new Cluster();
    let api: Api;
    let url: string;
    let configDir: string;
    const ids: Record<string, string> = {};

    before(async () => {
      const database = dialect === 'postgres' ? await cluster.postgresDatabase() : undefined;
      const server = await cluster.startServer(database ? { database } : {});
      url = server.url;
      api = await Api.login(url);
      const created = await api.call<{ key: { id: string }; secret: string }>(
        'POST',
        '/api/v1/registration-keys',
        {
          name: 'e2e-fleet',
          tags: ['e2e'],
          maxUses: 3,
          autoAccept: true,
        },
      );
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const secret = created.body.secret;
      const specs = [
        { name: 'web1', tags: ['canary'], facts: { role: 'web', rack: '1' } },
        { name: 'web2', tags: [], facts: { role: 'web', rack: '2' } },
        { name: 'db1', tags: ['storage'], facts: { role: 'db', rack: '3' } },
      ];
      for (const s of specs) {
        await cluster.startAgent({
          server: url,
          registrationKey: secret,
          tags: s.tags,
          facts: { ...s.facts, name: s.name },
        });
      }
      const devices = await waitFor(
        'three accepted devices with custom facts',
        async () => {
          const r = await api.call<{ items: DeviceView[] }>('GET', '/api/v1/devices?limit=100');
          const withFacts = r.body.items.filter(
            (d) => d.status === 'accepted' && typeof d.facts.name === 'string',
          );
          return withFacts.length === 3 ? withFacts : null;
        },
        60_000,
      );
      for (const d of devices) ids[String(d.facts.name)] = d.id;
      configDir = await cluster.tempDir('flt-cli-');
      const login = spawnSync(
        process.execPath,
        [cliBin, 'login', '--server', url, '--user', 'admin', '--password-stdin'],
        {
          input: ADMIN_PASSWORD + '\n',
          env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
          encoding: 'utf8',
        },
      );
      assert.equal(login.status, 0, login.stderr);
    });

    after(() => cluster.cleanup());

    async function filter(rsql: string): Promise<string[]> {
      const r = await api.call<{ items: DeviceView[] }>(
        'GET',
        `/api/v1/devices?filter=${encodeURIComponent(rsql)}&limit=100`,
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.items.map((d) => String(d.facts.name)).sort();
    }

    void test('registration key tags, agent tags and built-in facts are visible through the API', async () => {
      const r = await api.call<DeviceView>('GET', `/api/v1/devices/${ids.web1}`);
      assert.equal(r.status, 200);
      assert.deepEqual([...r.body.tags].sort(), ['canary', 'e2e']);
      assert.equal(r.body.facts.role, 'web');
      assert.equal(r.body.facts.arch, nodeArchToFact[osArch()] ?? osArch());
      assert.equal(typeof r.body.facts.cpus, 'number');
      assert.equal(typeof r.body.facts['memory.total_bytes'], 'number');
      assert.ok(r.body.hostname, 'hostname fact recorded');
      const key = await api.call<{ items: { name: string; uses: number; state: string }[] }>(
        'GET',
        '/api/v1/registration-keys',
      );
      const k = key.body.items.find((x) => x.name === 'e2e-fleet');
      assert.equal(k?.uses, 3);
      assert.equal(k?.state, 'exhausted');
    });

    void test('RSQL filters select the right devices', async () => {
      assert.deepEqual(await filter('tags==canary'), ['web1']);
      assert.deepEqual(await filter('role==web'), ['web1', 'web2']);
      assert.deepEqual(await filter('role==web;tags!=canary'), ['web2']);
      assert.deepEqual(await filter('tags=in=(canary,storage)'), ['db1', 'web1']);
      assert.deepEqual(await filter('tags=out=(canary,storage)'), ['web2']);
      assert.deepEqual(await filter('rack=gt=1'), ['db1', 'web2']);
      assert.deepEqual(await filter('role==d*'), ['db1']);
      assert.deepEqual(await filter(`arch==${nodeArchToFact[osArch()] ?? osArch()};tags==e2e`), [
        'db1',
        'web1',
        'web2',
      ]);
      assert.deepEqual(await filter('(role==db,rack==1);status==accepted'), ['db1', 'web1']);
      assert.deepEqual(await filter('role==nothing'), []);
      const bad = await api.call<{ error: { code: string } }>(
        'GET',
        `/api/v1/devices?filter=${encodeURIComponent('role==(')}`,
      );
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'FLT_FILTER_INVALID');
    });

    void test('the CLI lists and filters the same devices, as JSON and as a table', () => {
      const env = { ...process.env, FLOTILLA_CONFIG_DIR: configDir };
      const json = spawnSync(process.execPath, [cliBin, 'devices', 'ls', '--filter', 'role==web', '--json'], {
        env,
        encoding: 'utf8',
      });
      assert.equal(json.status, 0, json.stderr);
      const parsed = JSON.parse(json.stdout) as { items: DeviceView[] } | DeviceView[];
      const items = Array.isArray(parsed) ? parsed : parsed.items;
      assert.deepEqual(items.map((d) => d.id).sort(), [ids.web1, ids.web2].sort());
      const table = spawnSync(process.execPath, [cliBin, 'devices', 'ls', '--filter', 'tags==storage'], {
        env,
        encoding: 'utf8',
      });
      assert.equal(table.status, 0, table.stderr);
      assert.match(table.stdout, new RegExp(ids.db1!.slice(0, 8)));
      assert.doesNotMatch(table.stdout, new RegExp(ids.web1!.slice(0, 12)));
      const show = spawnSync(process.execPath, [cliBin, 'devices', 'show', ids.db1!, '--json'], {
        env,
        encoding: 'utf8',
      });
      assert.equal(show.status, 0, show.stderr);
      assert.equal((JSON.parse(show.stdout) as DeviceView).facts.role, 'db');
    });
  });
}
