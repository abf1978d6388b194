/**
 * Two server processes on one PostgreSQL database deploy to the same devices at the same time:
 * every assignment is recorded exactly once (one row per device and app naming the last release
 * deployed, one state_version bump and one audit entry per deployment), and each server's director
 * metadata, as the device reads it, names exactly the device's assignments.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ReleaseRoutes } from '@flotilla/protocol';
import type { DeployResponse, Release } from '@flotilla/protocol';
import pino from 'pino';
import { openDatabase } from '../../src/db/open.js';
import type { OpenDatabase } from '../../src/db/open.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { bearer, createTestApp, testDialects } from '../helpers/app.js';
import { startServerProcess } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { publish, treeOf } from '../objects/push.js';
import { directorTargetPaths } from '../helpers/director.js';

const DEVICES = 6;
const ROUNDS = 3;

async function directorPaths(url: string, deviceId: string, token: string): Promise<string[]> {
  const get = async (file: string) => {
    const res = await fetch(`${url}/tuf/director/${deviceId}/${file}`, { headers: bearer(token) });
    assert.equal(res.status, 200, file);
    return Buffer.from(await res.arrayBuffer());
  };
  return directorTargetPaths(get);
}

async function deploy(server: ServerProcess, token: string, release: Release): Promise<DeployResponse> {
  const res = await fetch(`${server.url}${ReleaseRoutes.deploy}`, {
    method: 'POST',
    headers: { ...bearer(token), 'content-type': 'application/json' },
    body: JSON.stringify({ app: release.app, version: release.version, filter: 'tags==fleet' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as DeployResponse;
}

void test(
  'two servers on one PostgreSQL deploy to the same devices at once: no assignment lost or doubled',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL not among FLOTILLA_TEST_DIALECTS' },
  async () => {
    const t = await createTestApp({ dialect: 'postgres', config: { allowServerSideSigning: true } });
    const replicaDir = await mkdtemp(join(tmpdir(), 'flt-replica-'));
    const servers: ServerProcess[] = [];
    let db: OpenDatabase | undefined;
    try {
      const web = [
        await publish(t, await treeOf({ 'index.html': 'web 1' }), 'web', '1'),
        await publish(t, await treeOf({ 'index.html': 'web 2' }), 'web', '2'),
      ];
      const api = [
        await publish(t, await treeOf({ 'api.js': 'api 1' }), 'api', '1'),
        await publish(t, await treeOf({ 'api.js': 'api 2' }), 'api', '2'),
      ];
      const devices = [];
      for (let i = 0; i < DEVICES; i++) devices.push(await acceptedDevice(t, { tags: ['fleet'] }));
      const before = new Map<string, number>();
      for (const device of devices) {
        const row = await t.ctx.db
          .selectFrom('devices')
          .select('state_version')
          .where('id', '=', device.id)
          .executeTakeFirstOrThrow();
        before.set(device.id, Number(row.state_version));
      }
      await t.app.close();
      // A replica: the same keys, metadata and objects, its own data directory.
      await cp(t.dataDir, replicaDir, { recursive: true });
      for (const dataDir of [t.dataDir, replicaDir])
        servers.push(await startServerProcess({ dataDir, database: t.config.database }));
      const [a, b] = servers as [ServerProcess, ServerProcess];

      for (let round = 0; round < ROUNDS; round++) {
        // Both apps from both servers at once: each server deploys one app, then the other's.
        const answers = await Promise.all([
          deploy(a, t.adminToken, web[round % 2]!),
          deploy(b, t.adminToken, api[round % 2]!),
          deploy(b, t.adminToken, web[round % 2]!),
          deploy(a, t.adminToken, api[round % 2]!),
        ]);
        for (const answer of answers) assert.equal(answer.devices.length, DEVICES);
      }

      const last = [web[(ROUNDS - 1) % 2]!.targetPath, api[(ROUNDS - 1) % 2]!.targetPath].sort();
      const opened = await openDatabase(t.config.database, pino({ level: 'silent' }));
      db = opened;
      const rows = await opened.db
        .selectFrom('device_apps')
        .select(['device_id', 'desired'])
        .where(
          'device_id',
          'in',
          devices.map((d) => d.id),
        )
        .execute();
      assert.equal(rows.length, DEVICES * 2, 'one row per device and app');
      const deployments = 4 * ROUNDS;
      for (const device of devices) {
        assert.deepEqual(
          rows
            .filter((r) => r.device_id === device.id)
            .map((r) => r.desired!)
            .sort(),
          last,
        );
        const row = await opened.db
          .selectFrom('devices')
          .select(['state_version', 'director_pending'])
          .where('id', '=', device.id)
          .executeTakeFirstOrThrow();
        assert.equal(
          Number(row.state_version),
          before.get(device.id)! + deployments,
          'one state_version bump per deployment',
        );
        assert.equal(row.director_pending, null);
        for (const server of servers)
          assert.deepEqual(await directorPaths(server.url, device.id, device.token), last);
      }
      const audit = await opened.db
        .selectFrom('audit_log')
        .select('details')
        .where('action', '=', 'deployment.create')
        .execute();
      assert.equal(audit.length, deployments, 'one audit entry per deployment');
    } finally {
      await db?.close();
      await Promise.all(servers.map((s) => s.stop()));
      await rm(replicaDir, { recursive: true, force: true });
      await t.close();
    }
  },
);
