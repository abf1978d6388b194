/** The deployments module's domain events: what a deploy and a device's reports emit, after the commit. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DEVICE_REPORTS_ROUTE, ReleaseRoutes } from '@flotilla/protocol';
import type { Release } from '@flotilla/protocol';
import pino from 'pino';
import { createEventBus } from '../../src/events/bus.js';
import type { DomainEvent } from '../../src/events/bus.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { publish, treeOf } from '../objects/push.js';

forEachDialect((dialect) => {
  let t: TestApp;
  let web: Release;
  before(async () => {
    t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
    web = await publish(t, await treeOf({ 'index.html': 'events' }), 'web', '1');
  });
  after(() => t.close());

  void test('a deploy emits device.assigned per device and deployment.created; reports emit their phase', async () => {
    const device = await acceptedDevice(t);
    const seen: DomainEvent[] = [];
    const stop = t.events.subscribe(
      () => true,
      (e) => {
        seen.push(e);
      },
    );
    try {
      const res = await t.app.inject({
        method: 'POST',
        url: ReleaseRoutes.deploy,
        headers: bearer(t.adminToken),
        payload: { app: 'web', version: '1', deviceId: device.id },
      });
      assert.equal(res.statusCode, 200, res.body);
      const state = await t.ctx.db
        .selectFrom('devices')
        .select(['state_version', 'director_pending'])
        .where('id', '=', device.id)
        .executeTakeFirstOrThrow();
      // Emitted once committed and signed: the marker is already cleared.
      assert.equal(state.director_pending, null);
      assert.deepEqual(
        seen.map((e) => e.type),
        ['device.assigned', 'deployment.created'],
      );
      const [assigned, created] = seen;
      assert.ok(assigned?.type === 'device.assigned' && created?.type === 'deployment.created');
      assert.deepEqual(
        { ...assigned, rollout: created.rollout },
        {
          type: 'device.assigned',
          deviceId: device.id,
          app: 'web',
          targetPath: web.targetPath,
          rollout: created.rollout,
          stateVersion: Number(state.state_version),
        },
      );
      assert.match(created.rollout, /^dep_/);
      assert.deepEqual(created.deviceIds, [device.id]);
      assert.equal(created.version, '1');

      seen.length = 0;
      const reported = await t.app.inject({
        method: 'POST',
        url: DEVICE_REPORTS_ROUTE,
        headers: bearer(device.token),
        payload: { app: 'web', targetPath: web.targetPath, phase: 'committed' },
      });
      assert.equal(reported.statusCode, 204, reported.body);
      assert.deepEqual(seen, [
        {
          type: 'device.update.committed',
          deviceId: device.id,
          app: 'web',
          phase: 'committed',
          targetPath: web.targetPath,
          running: web.targetPath,
        },
      ]);
    } finally {
      stop();
    }
  });
});

void test('a subscriber that throws or rejects is logged; the others still run and emit never throws', async () => {
  const bus = createEventBus(pino({ level: 'silent' }));
  const got: string[] = [];
  bus.on('device.assigned', () => {
    throw new Error('boom');
  });
  bus.on('device.assigned', () => Promise.reject(new Error('async boom')));
  const stop = bus.on('device.assigned', (e) => {
    got.push(e.deviceId);
  });
  bus.on('deployment.created', () => {
    got.push('wrong type');
  });
  const event = {
    type: 'device.assigned',
    deviceId: 'd1',
    app: 'web',
    targetPath: 'web/1',
    rollout: 'dep_1',
    stateVersion: 1,
  } as const;
  bus.emit(event);
  stop();
  bus.emit(event);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(got, ['d1']);
});
