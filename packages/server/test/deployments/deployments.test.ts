import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DEVICE_REPORTS_ROUTE, ReleaseRoutes, ServerCommands } from '@flotilla/protocol';
import type {
  AppProcessStatus,
  DeployResponse,
  DeployStatus,
  DeviceAppList,
  DeviceReport,
  Release,
} from '@flotilla/protocol';
import type { Metadata, Targets } from '@tufjs/models';
import { acceptedDevice, createKey, enroll } from '../devices/fixtures.js';
import { TestSocket } from '../devices/ws-client.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode } from '../helpers/http.js';
import { publish, treeOf } from '../objects/push.js';
import { readDirectorTargets } from '../helpers/director.js';

/** The device's director targets, read as an agent would: timestamp → snapshot → targets. */
async function directorTargets(t: TestApp, deviceId: string, token: string): Promise<Metadata<Targets>> {
  const get = async (file: string) => {
    const res = await t.app.inject({
      method: 'GET',
      url: `/tuf/director/${deviceId}/${file}`,
      headers: bearer(token),
    });
    assert.equal(res.statusCode, 200, `${file}: ${res.body}`);
    return res.rawPayload;
  };
  return readDirectorTargets(get);
}

async function stateVersion(t: TestApp, deviceId: string): Promise<number> {
  const row = await t.ctx.db
    .selectFrom('devices')
    .select('state_version')
    .where('id', '=', deviceId)
    .executeTakeFirstOrThrow();
  return Number(row.state_version);
}

function deployReq(t: TestApp, payload: Record<string, unknown>, token = t.adminToken) {
  return t.app.inject({ method: 'POST', url: ReleaseRoutes.deploy, headers: bearer(token), payload });
}

function report(t: TestApp, token: string, body: DeviceReport) {
  return t.app.inject({ method: 'POST', url: DEVICE_REPORTS_ROUTE, headers: bearer(token), payload: body });
}

async function apps(t: TestApp, deviceId: string): Promise<DeviceAppList> {
  const res = await t.app.inject({
    method: 'GET',
    url: `/api/v1/devices/${deviceId}/apps`,
    headers: bearer(t.adminToken),
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<DeviceAppList>();
}

forEachDialect((dialect) => {
  let t: TestApp;
  let web13: Release;
  let web14: Release;
  let api1: Release;
  before(async () => {
    t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
    web13 = await publish(t, await treeOf({ 'index.html': 'v1.3' }), 'web', '1.3.0');
    web14 = await publish(t, await treeOf({ 'index.html': 'v1.4' }), 'web', '1.4.0');
    api1 = await publish(t, await treeOf({ 'api.js': 'api' }), 'api', '1');
  });
  after(() => t.close());

  void test('server-side signing signs releases at creation', () => {
    assert.equal(web13.signed, true);
    assert.equal(web14.signed, true);
  });

  void test('deploy to one device: director targets name the release, state_version bumps, device notified', async () => {
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const device = await acceptedDevice(t);
    const ws = await TestSocket.open(url, device.token);
    try {
      await ws.request('hello-1', 'hello', { agentVersion: '0.1.0' });
      const before = await stateVersion(t, device.id);
      const res = await deployReq(
        t,
        { app: 'web', version: '1.3.0', deviceId: device.id },
        await t.tokenFor('deployer'),
      );
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json<DeployResponse>();
      assert.deepEqual(
        { app: body.app, version: body.version, devices: body.devices },
        { app: 'web', version: '1.3.0', devices: [device.id] },
      );
      // One device is one batch: the deployment completed within the request.
      assert.equal(body.deployment.state, 'complete');
      assert.equal(body.deployment.assigned, 1);
      assert.equal(await stateVersion(t, device.id), before + 1);
      const notice = await ws.next((m) => m.command === ServerCommands.stateChanged);
      assert.deepEqual(notice.data, { stateVersion: before + 1 });

      const targets = await directorTargets(t, device.id, device.token);
      assert.deepEqual(Object.keys(targets.signed.targets), [web13.targetPath]);
      const custom = targets.signed.targets[web13.targetPath]!.custom;
      assert.equal(custom.runtime, 'files');
      assert.match(String(custom.rollout), /^dep_/);

      // A second app keeps the first; a new version of the first replaces it.
      await deployReq(t, { app: 'api', version: '1', deviceId: device.id });
      await deployReq(t, { app: 'web', version: '1.4.0', deviceId: device.id });
      const after = await directorTargets(t, device.id, device.token);
      assert.deepEqual(Object.keys(after.signed.targets).sort(), [api1.targetPath, web14.targetPath].sort());
      const list = await apps(t, device.id);
      assert.deepEqual(
        list.items.map((a) => [a.app, a.desired, a.phase]),
        [
          ['api', api1.targetPath, 'assigned'],
          ['web', web14.targetPath, 'assigned'],
        ],
      );

      // Another device cannot read this device's director metadata.
      const other = await acceptedDevice(t);
      const denied = await t.app.inject({
        method: 'GET',
        url: `/tuf/director/${device.id}/timestamp.json`,
        headers: bearer(other.token),
      });
      assert.equal(denied.statusCode, 403);
    } finally {
      ws.close();
    }
  });

  void test('concurrent deployments of two apps to one device both land in its director targets', async () => {
    const device = await acceptedDevice(t);
    const [a, b] = await Promise.all([
      deployReq(t, { app: 'web', version: '1.4.0', deviceId: device.id }),
      deployReq(t, { app: 'api', version: '1', deviceId: device.id }),
    ]);
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(b.statusCode, 200, b.body);
    const targets = await directorTargets(t, device.id, device.token);
    assert.deepEqual(Object.keys(targets.signed.targets).sort(), [api1.targetPath, web14.targetPath].sort());
  });

  void test('deploy by filter reaches only accepted matching devices', async () => {
    const canaryA = await acceptedDevice(t, { tags: ['canary'] });
    const canaryB = await acceptedDevice(t, { tags: ['canary'] });
    await acceptedDevice(t, { tags: ['stable'] });
    const { secret } = await createKey(t, { name: 'manual', tags: ['canary'] });
    const pending = await enroll(t, secret);
    const res = await deployReq(t, { app: 'web', version: '1.4.0', filter: 'tags==canary' });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json<DeployResponse>().devices, [canaryA.id, canaryB.id].sort());
    assert.ok(!res.json<DeployResponse>().devices.includes(pending.id));
    const targets = await directorTargets(t, canaryB.id, canaryB.token);
    assert.deepEqual(Object.keys(targets.signed.targets), [web14.targetPath]);
    assert.equal(
      errorCode(await deployReq(t, { app: 'web', version: '1.4.0', filter: 'tags=oops=(' })),
      'FLT_FILTER_INVALID',
    );
  });

  void test('deploy refuses bad requests: both/neither target, unknown release or device, pending device, viewer', async () => {
    const device = await acceptedDevice(t);
    assert.equal(errorCode(await deployReq(t, { app: 'web', version: '1.4.0' })), 'FLT_VALIDATION');
    assert.equal(
      errorCode(await deployReq(t, { app: 'web', version: '1.4.0', deviceId: device.id, filter: 'tags==x' })),
      'FLT_VALIDATION',
    );
    assert.equal(
      errorCode(await deployReq(t, { app: 'web', version: '9', deviceId: device.id })),
      'FLT_NOT_FOUND',
    );
    assert.equal(
      errorCode(await deployReq(t, { app: 'web', version: '1.4.0', deviceId: 'nope' })),
      'FLT_DEVICE_NOT_FOUND',
    );
    const { secret } = await createKey(t, { name: 'pending-key' });
    const pending = await enroll(t, secret);
    assert.equal(
      errorCode(await deployReq(t, { app: 'web', version: '1.4.0', deviceId: pending.id })),
      'FLT_DEVICE_STATE_CONFLICT',
    );
    const viewer = await t.tokenFor('viewer');
    assert.equal(
      errorCode(await deployReq(t, { app: 'web', version: '1.4.0', deviceId: device.id }, viewer)),
      'FLT_FORBIDDEN',
    );
    assert.deepEqual((await apps(t, device.id)).items, []);
  });

  void test('reports move a device through the phases; committed sets current; stale reports are refused', async () => {
    const device = await acceptedDevice(t);
    await deployReq(t, { app: 'web', version: '1.3.0', deviceId: device.id });
    const base = { app: 'web', targetPath: web13.targetPath } as const;
    let res = await report(t, device.token, {
      ...base,
      phase: 'downloading',
      bytesDone: 10,
      bytesTotal: 100,
    });
    assert.equal(res.statusCode, 204, res.body);
    let row = (await apps(t, device.id)).items[0]!;
    assert.deepEqual([row.phase, row.bytesDone, row.bytesTotal, row.current], ['downloading', 10, 100, null]);
    res = await report(t, device.token, {
      ...base,
      phase: 'committed',
      bytesDone: 100,
      bytesTotal: 100,
      bytesFetched: 80,
    });
    assert.equal(res.statusCode, 204);
    row = (await apps(t, device.id)).items[0]!;
    assert.deepEqual(
      [row.phase, row.current, row.bytesFetched, row.error],
      ['committed', web13.targetPath, 80, null],
    );

    await deployReq(t, { app: 'web', version: '1.4.0', deviceId: device.id });
    const stale = await report(t, device.token, { ...base, phase: 'health' });
    assert.equal(errorCode(stale), 'FLT_REPORT_STALE');
    const failed = await report(t, device.token, {
      app: 'web',
      targetPath: web14.targetPath,
      phase: 'rolled-back',
      error: { code: 'FLT_HEALTH', message: 'health check failed 3 times' },
    });
    assert.equal(failed.statusCode, 204);
    row = (await apps(t, device.id)).items[0]!;
    assert.deepEqual(
      [row.phase, row.current, row.error],
      ['rolled-back', web13.targetPath, { code: 'FLT_HEALTH', message: 'health check failed 3 times' }],
    );

    const status = await t.app.inject({
      method: 'GET',
      url: `${ReleaseRoutes.deployStatus}?app=web&version=1.4.0`,
      headers: bearer(await t.tokenFor('viewer')),
    });
    assert.equal(status.statusCode, 200, status.body);
    const body = status.json<DeployStatus>();
    assert.equal(body.devices.find((d) => d.deviceId === device.id)?.phase, 'rolled-back');
    assert.ok((body.phases['rolled-back'] ?? 0) >= 1);

    const audit = await t.ctx.db
      .selectFrom('audit_log')
      .select('action')
      .where('actor_id', '=', device.id)
      .orderBy('id') // PostgreSQL returns rows in no particular order without one
      .execute();
    assert.deepEqual(
      audit.map((a) => a.action).filter((a) => a.startsWith('update.')),
      ['update.committed', 'update.rolled-back'],
    );
  });

  void test('final reports record what runs (rollbacks included); process status is stored, shown and cleared by a move', async () => {
    const device = await acceptedDevice(t);
    const row = async () => (await apps(t, device.id)).items.find((a) => a.app === 'web')!;
    await deployReq(t, { app: 'web', version: '1.3.0', deviceId: device.id });
    const web = (targetPath: string) => ({ app: 'web', targetPath }) as const;
    let res = await report(t, device.token, {
      ...web(web13.targetPath),
      phase: 'committed',
      running: web13.targetPath,
    });
    assert.equal(res.statusCode, 204, res.body);
    const looping: AppProcessStatus = {
      state: 'restarting',
      since: '2026-12-06T00:00:02.000Z',
      restarts: 4,
      lastExit: { code: 3, signal: null, at: '2026-12-06T00:00:02.000Z' },
    };
    res = await report(t, device.token, { ...web(web13.targetPath), process: looping });
    assert.equal(res.statusCode, 204, res.body);
    assert.deepEqual((await row()).process, looping);
    const status = await t.app.inject({
      method: 'GET',
      url: `${ReleaseRoutes.deployStatus}?app=web&version=1.3.0`,
      headers: bearer(t.adminToken),
    });
    assert.deepEqual(
      status.json<DeployStatus>().devices.find((d) => d.deviceId === device.id)?.process,
      looping,
    );

    // A new release committed: the old process status no longer applies.
    await deployReq(t, { app: 'web', version: '1.4.0', deviceId: device.id });
    res = await report(t, device.token, {
      ...web(web14.targetPath),
      phase: 'committed',
      running: web14.targetPath,
    });
    assert.equal(res.statusCode, 204, res.body);
    assert.deepEqual([(await row()).current, (await row()).process], [web14.targetPath, null]);

    // The operator's rollback: the device runs 1.3.0 again, 1.4.0 stays assigned (held).
    res = await report(t, device.token, {
      ...web(web14.targetPath),
      phase: 'rolled-back',
      error: { code: 'FLT_ROLLED_BACK_BY_OPERATOR', message: 'rolled back by an operator' },
      running: web13.targetPath,
    });
    assert.equal(res.statusCode, 204, res.body);
    let now = await row();
    assert.deepEqual(
      [now.desired, now.current, now.phase, now.error?.code],
      [web14.targetPath, web13.targetPath, 'rolled-back', 'FLT_ROLLED_BACK_BY_OPERATOR'],
    );

    // A final report about a release no longer assigned still says what runs; nothing else moves.
    res = await report(t, device.token, {
      ...web(web13.targetPath),
      phase: 'rolled-back',
      error: { code: 'FLT_ROLLED_BACK_BY_OPERATOR', message: 'rolled back by an operator' },
      running: null,
    });
    assert.equal(res.statusCode, 204, res.body);
    now = await row();
    assert.deepEqual([now.current, now.phase], [null, 'rolled-back']);
    // Progress about it is still stale.
    assert.equal(
      errorCode(await report(t, device.token, { ...web(web13.targetPath), phase: 'health' })),
      'FLT_REPORT_STALE',
    );

    // A process status names what runs, and sets it.
    res = await report(t, device.token, { ...web(web13.targetPath), process: { ...looping, restarts: 0 } });
    assert.equal(res.statusCode, 204, res.body);
    assert.deepEqual([(await row()).current, (await row()).process?.restarts], [web13.targetPath, 0]);
    assert.equal(
      errorCode(await report(t, device.token, { app: 'never', targetPath: 'never/1/x', process: looping })),
      'FLT_REPORT_STALE',
    );
    const bad = await t.app.inject({
      method: 'POST',
      url: DEVICE_REPORTS_ROUTE,
      headers: bearer(device.token),
      payload: { ...web(web13.targetPath), process: { ...looping, restarts: -1 } },
    });
    assert.equal(errorCode(bad), 'FLT_VALIDATION');

    const audit = await t.ctx.db
      .selectFrom('audit_log')
      .select(['action', 'details'])
      .where('actor_id', '=', device.id)
      .orderBy('id')
      .execute();
    const rolled = audit.find((a) => a.action === 'update.rolled-back');
    assert.match(String(rolled?.details), new RegExp(`"running":"${web13.targetPath}"`));
  });

  void test('reports: hostile bodies, operator tokens and unassigned apps are refused', async () => {
    const device = await acceptedDevice(t);
    const bad = await t.app.inject({
      method: 'POST',
      url: DEVICE_REPORTS_ROUTE,
      headers: bearer(device.token),
      payload: { app: 'web', targetPath: 'x', phase: 'exploded' },
    });
    assert.equal(errorCode(bad), 'FLT_VALIDATION');
    const unassigned = await report(t, device.token, {
      app: 'web',
      targetPath: web13.targetPath,
      phase: 'committed',
    });
    assert.equal(errorCode(unassigned), 'FLT_REPORT_STALE');
    const operator = await report(t, t.adminToken, {
      app: 'web',
      targetPath: web13.targetPath,
      phase: 'committed',
    });
    assert.equal(operator.statusCode, 401);
    assert.deepEqual((await apps(t, device.id)).items, []);
  });

  void test('rollback/restart reach a connected device; offline is FLT_DEVICE_OFFLINE', async () => {
    const url = await t.app
      .listen({ host: '127.0.0.1', port: 0 })
      .catch(() => `http://127.0.0.1:${String((t.app.server.address() as { port: number }).port)}`);
    const device = await acceptedDevice(t);
    await deployReq(t, { app: 'web', version: '1.4.0', deviceId: device.id });
    const action = (a: string, token = t.adminToken) =>
      t.app.inject({
        method: 'POST',
        url: `/api/v1/devices/${device.id}/apps/web/${a}`,
        headers: bearer(token),
      });
    assert.equal(errorCode(await action('restart')), 'FLT_DEVICE_OFFLINE');
    const ws = await TestSocket.open(url, device.token);
    try {
      await ws.request('hello-1', 'hello', { agentVersion: '0.1.0' });
      assert.equal((await action('rollback')).statusCode, 204);
      const msg = await ws.next((m) => m.command === 'rollback');
      assert.deepEqual(msg.data, { app: 'web' });
      assert.equal(errorCode(await action('rollback', await t.tokenFor('viewer'))), 'FLT_FORBIDDEN');
      assert.equal((await action('explode')).statusCode, 400);
    } finally {
      ws.close();
    }
  });
});

forEachDialect((dialect) => {
  void test('an unsigned release cannot be deployed', async () => {
    const t = await createTestApp({ dialect });
    try {
      const release = await publish(t, await treeOf({ 'x.txt': 'unsigned' }), 'plain', '1');
      assert.equal(release.signed, false);
      const device = await acceptedDevice(t);
      assert.equal(
        errorCode(await deployReq(t, { app: 'plain', version: '1', deviceId: device.id })),
        'FLT_RELEASE_UNSIGNED',
      );
      assert.deepEqual((await apps(t, device.id)).items, []);
    } finally {
      await t.close();
    }
  });
});
