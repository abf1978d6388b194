/**
 * A server killed in the middle of an assignment (SIGKILL, a real process over real HTTP) comes
 * back with the device's director metadata and `device_apps` in agreement: the assignment commits
 * with a re-sign marker, the director is re-signed from the committed rows, then the marker is
 * cleared; a start re-signs every marked device (docs/architecture.md "Assignments").
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ReleaseRoutes } from '@flotilla/protocol';
import type { DeviceAppList, Release } from '@flotilla/protocol';
import pino from 'pino';
import type { CrashPoint } from '../../src/test-hooks.js';
import { openDatabase } from '../../src/db/open.js';
import { SqliteMetadataStore } from '../../src/tuf/index.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { startServerProcess } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { assign, publish, treeOf } from '../objects/push.js';
import { parseMetadata } from '@flotilla/node-kit';
import { directorTargetPaths } from '../helpers/director.js';

/** The target paths the director signed for the device, read from the server's data directory. */
async function signedOnDisk(dataDir: string, deviceId: string): Promise<string[]> {
  const store = SqliteMetadataStore.open(join(dataDir, 'tuf', 'director.sqlite'));
  const repo = `director/${deviceId}`;
  const version = await store.latestVersion(repo, 'targets');
  assert.ok(version !== undefined, 'the device has director targets');
  const bytes = await store.get(repo, 'targets', version);
  return Object.keys(parseMetadata('targets', bytes!).signed.targets).sort();
}

/** The device's director targets as its agent reads them over HTTP: timestamp → snapshot → targets. */
async function signedOverHttp(url: string, deviceId: string, token: string): Promise<string[]> {
  const get = async (file: string) => {
    const res = await fetch(`${url}/tuf/director/${deviceId}/${file}`, { headers: bearer(token) });
    assert.equal(res.status, 200, `${file}: ${await res.clone().text()}`);
    return Buffer.from(await res.arrayBuffer());
  };
  return directorTargetPaths(get);
}

async function appsOverHttp(url: string, deviceId: string, token: string): Promise<string[]> {
  const res = await fetch(`${url}/api/v1/devices/${deviceId}/apps`, { headers: bearer(token) });
  assert.equal(res.status, 200);
  const list = (await res.json()) as DeviceAppList;
  return list.items
    .map((a) => a.desired)
    .filter((d): d is string => d !== null)
    .sort();
}

/** What the database says: the device's assigned releases and its re-sign marker. */
async function databaseState(t: TestApp, deviceId: string) {
  const opened = await openDatabase(t.config.database, pino({ level: 'silent' }));
  try {
    const apps = await opened.db
      .selectFrom('device_apps')
      .select('desired')
      .where('device_id', '=', deviceId)
      .execute();
    const device = await opened.db
      .selectFrom('devices')
      .select('director_pending')
      .where('id', '=', deviceId)
      .executeTakeFirstOrThrow();
    return {
      desired: apps.map((a) => a.desired!).sort(),
      pending: device.director_pending === null ? null : Number(device.director_pending),
    };
  } finally {
    await opened.close();
  }
}

forEachDialect((dialect) => {
  for (const point of ['assignment.after-commit', 'assignment.after-sign'] as CrashPoint[]) {
    void test(`SIGKILL at ${point}: after a restart the director and device_apps agree`, async () => {
      const t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
      let server: ServerProcess | undefined;
      try {
        const v1: Release = await publish(t, await treeOf({ 'index.html': 'v1' }), 'web', '1');
        const v2: Release = await publish(t, await treeOf({ 'index.html': 'v2' }), 'web', '2');
        const api: Release = await publish(t, await treeOf({ 'api.js': 'api' }), 'api', '1');
        const device = await acceptedDevice(t);
        await assign(t, v1, device.id);
        await assign(t, api, device.id);
        await t.app.close();

        server = await startServerProcess({
          dataDir: t.dataDir,
          ...(dialect === 'postgres' && { database: t.config.database }),
          env: { FLOTILLA_TEST_CRASH_AT: point },
        });
        const answer = await fetch(`${server.url}${ReleaseRoutes.deploy}`, {
          method: 'POST',
          headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
          body: JSON.stringify({ app: 'web', version: '2', deviceId: device.id }),
        }).catch((e: unknown) => e);
        // The director is re-signed in the background after the batch (deployments/jobs.ts): at
        // after-sign the answer may have left before the server died; at after-commit it never has.
        if (point === 'assignment.after-commit')
          assert.ok(answer instanceof Error, 'the server died before answering');
        assert.equal(await server.exited, 'SIGKILL');

        // The crash left the assignment committed and marked; the director before or after its re-sign.
        const crashed = await databaseState(t, device.id);
        assert.deepEqual(crashed.desired, [api.targetPath, v2.targetPath].sort());
        assert.notEqual(crashed.pending, null);
        assert.deepEqual(
          await signedOnDisk(t.dataDir, device.id),
          (point === 'assignment.after-commit' ? [api.targetPath, v1.targetPath] : crashed.desired).sort(),
        );

        server = await startServerProcess({
          dataDir: t.dataDir,
          ...(dialect === 'postgres' && { database: t.config.database }),
        });
        // Repaired at start, before any device asked.
        assert.deepEqual(await signedOnDisk(t.dataDir, device.id), crashed.desired);
        assert.equal((await databaseState(t, device.id)).pending, null);
        // And as the device and the operator see it.
        assert.deepEqual(await signedOverHttp(server.url, device.id, device.token), crashed.desired);
        assert.deepEqual(await appsOverHttp(server.url, device.id, t.adminToken), crashed.desired);
      } finally {
        await server?.stop();
        await t.close();
      }
    });
  }
});
