/**
 * Two server processes on one PostgreSQL database with Redis (127.0.0.1:6379): a device holds its
 * WebSocket on server B and has just read its director there (B keeps that token check for a few
 * seconds). Server A assigns it a release; B tells the device (`state-changed`), and the device's
 * next director read on B, presenting the version it was told, names the new target at once: B's
 * recent check read an older version, so it is not reused.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ReleaseRoutes, STATE_VERSION_HEADER } from '@flotilla/protocol';
import { acceptedDevice } from '../devices/fixtures.js';
import { TestSocket } from '../devices/ws-client.js';
import { bearer, createTestApp, testDialects } from '../helpers/app.js';
import { startServerProcess } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { publish, treeOf } from '../objects/push.js';
import { directorTargetPaths } from '../helpers/director.js';

const REDIS_URL = process.env.FLOTILLA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function directorTargets(
  url: string,
  deviceId: string,
  token: string,
  told: number,
): Promise<string[]> {
  const get = async (file: string) => {
    const res = await fetch(`${url}/tuf/director/${deviceId}/${file}`, {
      headers: { ...bearer(token), [STATE_VERSION_HEADER]: String(told) },
    });
    assert.equal(res.status, 200, file);
    return Buffer.from(await res.arrayBuffer());
  };
  return directorTargetPaths(get);
}

void test(
  'a device told of an assignment made on another server reads it at once on its own server (PostgreSQL + Redis)',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL not among FLOTILLA_TEST_DIALECTS' },
  async () => {
    const t = await createTestApp({ dialect: 'postgres', config: { allowServerSideSigning: true } });
    const replicaDir = await mkdtemp(join(tmpdir(), 'flt-director-replica-'));
    const servers: ServerProcess[] = [];
    let socket: TestSocket | undefined;
    try {
      const web1 = await publish(t, await treeOf({ 'index.html': 'v1' }), 'web', '1.0.0');
      const device = await acceptedDevice(t);
      await t.app.close();
      await cp(t.dataDir, replicaDir, { recursive: true });
      for (const dataDir of [t.dataDir, replicaDir])
        servers.push(
          await startServerProcess({
            dataDir,
            database: t.config.database,
            // B learns of A's assignment at its next reconciliation of connections (each heartbeat).
            env: { FLOTILLA_REDIS_URL: REDIS_URL, FLOTILLA_HEARTBEAT_INTERVAL_MS: '1000' },
          }),
        );
      const [a, b] = servers as [ServerProcess, ServerProcess];

      socket = await TestSocket.open(b.url, device.token);
      const welcome = await socket.request('hello-1', 'hello', { agentVersion: '' });
      const v0 = (welcome.data as { stateVersion: number }).stateVersion;
      assert.deepEqual(await directorTargets(b.url, device.id, device.token, v0), []);

      const res = await fetch(`${a.url}${ReleaseRoutes.deploy}`, {
        method: 'POST',
        headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
        body: JSON.stringify({ app: 'web', version: '1.0.0', deviceId: device.id }),
      });
      assert.equal(res.status, 200, await res.clone().text());

      const changed = await socket.next((m) => m.command === 'state-changed');
      const v1 = (changed.data as { stateVersion: number }).stateVersion;
      assert.ok(v1 > v0);
      assert.deepEqual(await directorTargets(b.url, device.id, device.token, v1), [web1.targetPath]);
      assert.deepEqual(await directorTargets(a.url, device.id, device.token, v1), [web1.targetPath]);
    } finally {
      socket?.ws.terminate();
      await Promise.all(servers.map((s) => s.stop()));
      await rm(replicaDir, { recursive: true, force: true });
      await t.close();
    }
  },
);
