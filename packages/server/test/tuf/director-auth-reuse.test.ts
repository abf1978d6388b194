/**
 * Director reads reuse a recent device token check only when it read the state version the device
 * says it was told about (`x-flotilla-state-version`), through real HTTP: an assignment committed
 * elsewhere (another replica, here written straight to the database) shows at once to a device
 * presenting the new version, an assignment made here shows at once whatever the device presents,
 * and a revocation here refuses the device at once. Object reads (whose scope follows the state
 * version) reuse checks under the same rule.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ReleaseRoutes, STATE_VERSION_HEADER } from '@flotilla/protocol';
import type { Release } from '@flotilla/protocol';
import { assignMany } from '../../src/deployments/assign.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { publish, treeOf } from '../objects/push.js';
import { directorTargetPaths } from '../helpers/director.js';

forEachDialect((dialect) => {
  let t: TestApp;
  let url: string;
  let web1: Release;
  let web2: Release;
  before(async () => {
    t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
    web1 = await publish(t, await treeOf({ 'index.html': 'v1' }), 'web', '1.0.0');
    web2 = await publish(t, await treeOf({ 'index.html': 'v2' }), 'web', '2.0.0');
    url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => t.close());

  const read = (deviceId: string, file: string, token: string, told?: string | number) =>
    fetch(`${url}/tuf/director/${deviceId}/${file}`, {
      headers: { ...bearer(token), ...(told !== undefined && { [STATE_VERSION_HEADER]: String(told) }) },
    });

  /** The target paths of the device's director targets, read as a TUF client does (three files). */
  async function targets(deviceId: string, token: string, told?: number): Promise<string[]> {
    const get = async (file: string) => {
      const res = await read(deviceId, file, token, told);
      assert.equal(res.status, 200, `${file}: ${await res.clone().text()}`);
      return Buffer.from(await res.arrayBuffer());
    };
    return directorTargetPaths(get);
  }

  async function stateVersion(deviceId: string): Promise<number> {
    const row = await t.ctx.db
      .selectFrom('devices')
      .select('state_version')
      .where('id', '=', deviceId)
      .executeTakeFirstOrThrow();
    return Number(row.state_version);
  }

  const errorCode = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

  void test('a read presenting a version a recent check read reuses it; a newer version is checked again', async () => {
    const device = await acceptedDevice(t);
    const v0 = await stateVersion(device.id);
    assert.equal((await read(device.id, 'timestamp.json', device.token, v0)).status, 200);
    // The token is gone from the database: only a reused check still takes it.
    await t.ctx.db.deleteFrom('device_tokens').where('device_id', '=', device.id).execute();
    assert.equal((await read(device.id, 'timestamp.json', device.token, v0)).status, 200, 'reused');
    assert.equal((await read(device.id, 'timestamp.json', device.token, Math.max(0, v0 - 1))).status, 200);
    const newer = await read(device.id, 'timestamp.json', device.token, v0 + 1);
    assert.equal(newer.status, 401, 'a newer version than the check read: checked again');
    assert.equal(await errorCode(newer), 'FLT_TOKEN_INVALID');
    const without = await read(device.id, 'timestamp.json', device.token);
    assert.equal(without.status, 401, 'no version presented: checked every time');
    for (const bad of ['abc', '-1', '1e3', '+1', '1.5', '9'.repeat(20), '']) {
      const res = await read(device.id, 'timestamp.json', device.token, bad);
      assert.equal(res.status, 401, `a header of ${JSON.stringify(bad)} is ignored: checked`);
      assert.equal(await errorCode(res), 'FLT_TOKEN_INVALID');
    }
  });

  void test('an assignment committed elsewhere shows at once to a device presenting the new version', async () => {
    const device = await acceptedDevice(t);
    const v0 = await stateVersion(device.id);
    assert.deepEqual(await targets(device.id, device.token, v0), []);
    // Another replica's assignment: committed in the database, no event and no re-sign here.
    const [assigned] = await assignMany(
      t.ctx,
      t.ctx.db,
      [device.id],
      'web',
      web1.targetPath,
      'dep_elsewhere',
    );
    assert.equal(assigned?.stateVersion, v0 + 1);
    assert.deepEqual(await targets(device.id, device.token, v0 + 1), [web1.targetPath]);
  });

  void test('an assignment made here shows at once, whatever version the device presents', async () => {
    const device = await acceptedDevice(t);
    const v0 = await stateVersion(device.id);
    assert.deepEqual(await targets(device.id, device.token, v0), []);
    const res = await t.app.inject({
      method: 'POST',
      url: ReleaseRoutes.deploy,
      headers: bearer(t.adminToken),
      payload: { app: 'web', version: '1.0.0', deviceId: device.id },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(await targets(device.id, device.token, v0), [web1.targetPath]);
    assert.deepEqual(await targets(device.id, device.token, v0 + 1), [web1.targetPath]);
  });

  const object = (id: string, token: string, told?: number) =>
    fetch(`${url}/api/v1/objects/${id}`, {
      headers: { ...bearer(token), ...(told !== undefined && { [STATE_VERSION_HEADER]: String(told) }) },
    });

  void test('object reads follow the same rule: an assignment committed elsewhere opens its objects at once', async () => {
    const device = await acceptedDevice(t);
    const v0 = await stateVersion(device.id);
    const missing = await object(web2.rootObject, device.token, v0);
    assert.equal(missing.status, 404, 'not assigned: as if not stored');
    assert.equal(await errorCode(missing), 'FLT_OBJECT_MISSING');
    await assignMany(t.ctx, t.ctx.db, [device.id], 'web', web2.targetPath, 'dep_elsewhere');
    const opened = await object(web2.rootObject, device.token, v0 + 1);
    assert.equal(opened.status, 200, 'the version told is newer than the reused check: checked again');
    await opened.arrayBuffer();
    await t.ctx.db.deleteFrom('device_tokens').where('device_id', '=', device.id).execute();
    const reused = await object(web2.rootObject, device.token, v0 + 1);
    assert.equal(reused.status, 200, 'reused');
    await reused.arrayBuffer();
    assert.equal((await object(web2.rootObject, device.token, v0 + 2)).status, 401);
    assert.equal((await object(web2.rootObject, device.token)).status, 401, 'no version: checked');
  });

  void test('a device revoked here is refused at once, though its check was reused', async () => {
    const device = await acceptedDevice(t);
    const other = await acceptedDevice(t);
    const v0 = await stateVersion(device.id);
    assert.equal((await read(device.id, 'timestamp.json', device.token, v0)).status, 200);
    assert.equal((await read(device.id, 'timestamp.json', device.token, v0)).status, 200);
    assert.equal((await object(web1.rootObject, device.token, v0)).status, 404, 'not its release');
    // Another device's reused check does not open this device's director.
    assert.equal((await read(other.id, 'timestamp.json', other.token, 0)).status, 200);
    const foreign = await read(device.id, 'timestamp.json', other.token, 0);
    assert.equal(foreign.status, 403);
    assert.equal(await errorCode(foreign), 'FLT_FORBIDDEN');
    const revoked = await t.app.inject({
      method: 'POST',
      url: `/api/v1/devices/${device.id}/revoke`,
      headers: bearer(t.adminToken),
      payload: {},
    });
    assert.ok(revoked.statusCode < 300, revoked.body);
    const after = await read(device.id, 'timestamp.json', device.token, v0);
    assert.equal(after.status, 403);
    assert.equal(await errorCode(after), 'FLT_DEVICE_REVOKED');
    const objectAfter = await object(web1.rootObject, device.token, v0);
    assert.equal(objectAfter.status, 403);
    assert.equal(await errorCode(objectAfter), 'FLT_DEVICE_REVOKED');
    const none = await fetch(`${url}/tuf/director/${device.id}/timestamp.json`, {
      headers: { [STATE_VERSION_HEADER]: String(v0) },
    });
    assert.equal(none.status, 401);
    assert.equal(await errorCode(none), 'FLT_UNAUTHENTICATED');
  });
});
