/**
 * Hostile input on the device routes: NUL characters (which PostgreSQL text cannot hold), huge
 * durations, junk bodies and bearer headers. Each gets a 4xx with a stable code and changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { DeviceRoutes, OperatorRoutes } from '@flotilla/protocol';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import {
  acceptedDevice,
  createKey,
  enroll,
  enrollRaw,
  errorCode,
  operatorPost,
  snapshot,
} from './fixtures.js';

forEachDialect((dialect) => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ dialect });
  });
  after(() => t.close());

  void it('NUL characters are refused everywhere they would be stored or compared', async () => {
    const d = await acceptedDevice(t);
    const { secret } = await createKey(t, { name: 'nul' });
    const pending = await enroll(t, secret);
    const before = await snapshot(t);
    const attempts = [
      await t.app.inject({
        method: 'POST',
        url: OperatorRoutes.registrationKeys,
        headers: bearer(t.adminToken),
        payload: { name: 'a\u0000b' },
      }),
      await enrollRaw(t, secret, { facts: { os: 'linux\u0000' } }),
      await t.app.inject({
        method: 'PUT',
        url: DeviceRoutes.inventory,
        headers: bearer(d.token),
        payload: { facts: { list: ['ok', '\u0000'] } },
      }),
      await operatorPost(t, '/api/v1/devices/:id/accept', pending.id, { reason: 'x\u0000' }),
    ];
    for (const res of attempts) {
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(errorCode(res), 'FLT_VALIDATION');
    }
    const filter = await t.app.inject({
      method: 'GET',
      url: `${OperatorRoutes.devices}?filter=${encodeURIComponent('arch==a\u0000b')}`,
      headers: bearer(t.adminToken),
    });
    assert.equal(filter.statusCode, 400);
    assert.equal(errorCode(filter), 'FLT_FILTER_INVALID');
    const after = await snapshot(t);
    // Only the nonce fetched for the refused enrollment is new.
    assert.deepEqual({ ...after, nonces: before.nonces }, before);
  });

  void it('junk bodies and headers on device routes are 4xx, never 5xx', async () => {
    const requests = [
      {
        method: 'POST' as const,
        url: DeviceRoutes.enroll,
        headers: { 'content-type': 'application/json' },
        body: '{"registrationKey":',
      },
      {
        method: 'POST' as const,
        url: DeviceRoutes.enroll,
        headers: { 'content-type': 'text/plain' },
        body: 'hello',
      },
      {
        method: 'POST' as const,
        url: DeviceRoutes.token,
        payload: { deviceId: '../../etc', challenge: 'x'.repeat(20), signature: 'y'.repeat(86) },
      },
      { method: 'POST' as const, url: DeviceRoutes.tokenChallenge, payload: { deviceId: 'x'.repeat(129) } },
      { method: 'GET' as const, url: DeviceRoutes.state, headers: { authorization: 'Bearer' } },
      { method: 'GET' as const, url: DeviceRoutes.state, headers: { authorization: 'Basic Zm9vOmJhcg==' } },
      {
        method: 'GET' as const,
        url: DeviceRoutes.state,
        headers: { authorization: `Bearer flt_dt_${'z'.repeat(5000)}` },
      },
      {
        method: 'PUT' as const,
        url: DeviceRoutes.inventory,
        headers: { authorization: 'Bearer flt_dt_x' },
        payload: { facts: {} },
      },
      {
        method: 'GET' as const,
        url: `${OperatorRoutes.devices}?filter=${'('.repeat(3000)}`,
        headers: bearer(t.adminToken),
      },
      {
        method: 'GET' as const,
        url: `${OperatorRoutes.devices}?sort=${'-'.repeat(300)}`,
        headers: bearer(t.adminToken),
      },
      {
        method: 'POST' as const,
        url: '/api/v1/devices/x/tags',
        headers: bearer(t.adminToken),
        payload: { add: 'not-a-list' },
      },
    ];
    for (const req of requests) {
      const res = await t.app.inject(req);
      assert.ok(
        res.statusCode >= 400 && res.statusCode < 500,
        `${req.method} ${req.url.slice(0, 60)} → ${res.statusCode} ${res.body}`,
      );
      assert.match(errorCode(res), /^FLT_/);
    }
  });
});
