/** The operator's devices and registration-key API: roles, status transitions, tags, audit. */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { OperatorRoutes } from '@flotilla/protocol';
import type { Role } from '@flotilla/protocol';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { createKey, enroll, errorCode, operatorPost } from './fixtures.js';

forEachDialect((dialect) => {
  let t: TestApp;
  let tokens: Record<Role, string>;
  before(async () => {
    t = await createTestApp({ dialect });
    tokens = {
      admin: t.adminToken,
      deployer: await t.tokenFor('deployer'),
      viewer: await t.tokenFor('viewer'),
    };
  });
  after(() => t.close());

  const pendingDevice = async () => {
    const { secret } = await createKey(t, { name: `manual-${Math.random()}` });
    return enroll(t, secret);
  };
  const status = async (id: string) =>
    (
      await t.app.inject({ method: 'GET', url: `/api/v1/devices/${id}`, headers: bearer(t.adminToken) })
    ).json<{
      status: string;
      stateVersion: number;
    }>();

  void it('viewers read but may not change devices or keys; deployers may not revoke or create keys', async () => {
    const d = await pendingDevice();
    const list = await t.app.inject({
      method: 'GET',
      url: OperatorRoutes.devices,
      headers: bearer(tokens.viewer),
    });
    assert.equal(list.statusCode, 200);
    const forbidden: [Role, string, string, unknown][] = [
      ['viewer', 'POST', OperatorRoutes.deviceAccept.replace(':id', d.id), {}],
      ['viewer', 'POST', OperatorRoutes.deviceReject.replace(':id', d.id), {}],
      ['viewer', 'POST', OperatorRoutes.deviceTags.replace(':id', d.id), { add: ['x'] }],
      ['viewer', 'POST', OperatorRoutes.deviceRevoke.replace(':id', d.id), {}],
      ['viewer', 'GET', OperatorRoutes.registrationKeys, undefined],
      ['viewer', 'POST', OperatorRoutes.registrationKeys, { name: 'k' }],
      ['deployer', 'POST', OperatorRoutes.deviceRevoke.replace(':id', d.id), {}],
      ['deployer', 'POST', OperatorRoutes.registrationKeys, { name: 'k' }],
    ];
    for (const [role, method, url, payload] of forbidden) {
      const res = await t.app.inject({
        method: method as 'GET' | 'POST',
        url,
        headers: bearer(tokens[role]),
        ...(payload ? { payload: payload } : {}),
      });
      assert.equal(res.statusCode, 403, `${role} ${method} ${url}`);
      assert.equal(errorCode(res), 'FLT_FORBIDDEN');
    }
    const anonymous = await t.app.inject({ method: 'GET', url: OperatorRoutes.devices });
    assert.equal(anonymous.statusCode, 401);
    assert.equal((await status(d.id)).status, 'pending', 'nothing changed');
    assert.equal(
      (
        await t.app.inject({
          method: 'GET',
          url: OperatorRoutes.registrationKeys,
          headers: bearer(tokens.deployer),
        })
      ).statusCode,
      200,
    );
  });

  void it('allowed transitions bump state_version and are audited; others are FLT_DEVICE_STATE_CONFLICT', async () => {
    const d = await pendingDevice();
    const v0 = (await status(d.id)).stateVersion;
    const steps: [string, number, string | null][] = [
      ['reject', 200, 'rejected'],
      ['reject', 409, null],
      ['accept', 200, 'accepted'],
      ['accept', 409, null],
      ['reject', 409, null],
      ['revoke', 200, 'revoked'],
      ['accept', 409, null],
      ['revoke', 409, null],
    ];
    let version = v0;
    for (const [action, code, next] of steps) {
      const res = await operatorPost(
        t,
        `/api/v1/devices/:id/${action}`,
        d.id,
        { reason: `test ${action}` },
        tokens.admin,
      );
      assert.equal(res.statusCode, code, `${action}: ${res.body}`);
      if (next === null) {
        assert.equal(errorCode(res), 'FLT_DEVICE_STATE_CONFLICT');
        assert.equal((await status(d.id)).stateVersion, version, 'a refused transition changes nothing');
      } else {
        version += 1;
        assert.deepEqual(res.json<{ status: string; stateVersion: number }>().status, next);
        assert.equal((await status(d.id)).stateVersion, version);
      }
    }
    const audit = await t.ctx.db
      .selectFrom('audit_log')
      .select(['action', 'details'])
      .where('subject_id', '=', d.id)
      .where('actor_type', '=', 'user')
      .orderBy('id')
      .execute();
    assert.deepEqual(
      audit.map((a) => a.action),
      ['device.reject', 'device.accept', 'device.revoke'],
    );
    assert.deepEqual(JSON.parse(audit[2]!.details!), {
      from: 'accepted',
      to: 'revoked',
      reason: 'test revoke',
    });
    const pending = await pendingDevice();
    assert.equal(
      (await operatorPost(t, '/api/v1/devices/:id/revoke', pending.id, {})).statusCode,
      200,
      'pending → revoked',
    );
  });

  void it('unknown devices are 404 FLT_DEVICE_NOT_FOUND', async () => {
    for (const url of ['/api/v1/devices/nope', '/api/v1/devices/nope/accept']) {
      const res = await t.app.inject({
        method: url.endsWith('accept') ? 'POST' : 'GET',
        url,
        headers: bearer(t.adminToken),
        ...(url.endsWith('accept') ? { payload: {} } : {}),
      });
      assert.equal(res.statusCode, 404);
      assert.equal(errorCode(res), 'FLT_DEVICE_NOT_FOUND');
    }
  });

  void it('tags: add, remove, set; no-op changes nothing; bad requests are refused', async () => {
    const d = await pendingDevice();
    const tags = async (body: unknown, token = tokens.deployer) =>
      operatorPost(t, '/api/v1/devices/:id/tags', d.id, body, token);
    assert.deepEqual((await tags({ add: ['b', 'a'] })).json<{ tags: string[] }>().tags, ['a', 'b']);
    assert.deepEqual((await tags({ add: ['c'], remove: ['a'] })).json<{ tags: string[] }>().tags, ['b', 'c']);
    const v = (await status(d.id)).stateVersion;
    assert.deepEqual((await tags({ add: ['b'] })).json<{ tags: string[] }>().tags, ['b', 'c']);
    assert.equal((await status(d.id)).stateVersion, v, 'no change, no new state version');
    assert.deepEqual((await tags({ set: ['z'] })).json<{ tags: string[] }>().tags, ['z']);
    for (const body of [
      {},
      { set: ['a'], add: ['b'] },
      { add: ['a'], remove: ['a'] },
      { add: ['bad tag'] },
      { add: Array.from({ length: 65 }, (_, i) => `t${i}`) },
    ]) {
      const res = await tags(body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(errorCode(res), 'FLT_VALIDATION');
    }
    assert.deepEqual(
      (
        await t.app.inject({ method: 'GET', url: `/api/v1/devices/${d.id}`, headers: bearer(t.adminToken) })
      ).json<{ tags: string[] }>().tags,
      ['z'],
    );
  });

  void it('concurrent tag changes on one device all succeed, one after the other', async () => {
    const d = await pendingDevice();
    const v0 = (await status(d.id)).stateVersion;
    const sets = Array.from({ length: 8 }, (_, i) => [`set-${i}`, 'common']);
    const results = await Promise.all(
      sets.map((set) => operatorPost(t, '/api/v1/devices/:id/tags', d.id, { set }, tokens.deployer)),
    );
    assert.deepEqual(
      results.map((r) => r.statusCode),
      sets.map(() => 200),
    );
    const final = (
      await t.app.inject({ method: 'GET', url: `/api/v1/devices/${d.id}`, headers: bearer(t.adminToken) })
    ).json<{
      tags: string[];
      stateVersion: number;
    }>();
    assert.ok(sets.some((set) => [...set].sort().join() === final.tags.join()));
    assert.equal(final.stateVersion, v0 + 8);
  });

  void it('list over HTTP: filter, sort, pagination and stable error codes', async () => {
    const { secret } = await createKey(t, { name: 'listing', tags: ['listing'], autoAccept: true });
    for (const arch of ['arm64', 'amd64', 'arm64']) await enroll(t, secret, { facts: { arch } });
    const get = (qs: string, token = tokens.viewer) =>
      t.app.inject({ method: 'GET', url: `${OperatorRoutes.devices}?${qs}`, headers: bearer(token) });
    const page = await get(
      `filter=${encodeURIComponent('tags==listing;arch==arm64')}&limit=1&sort=-enrolledAt`,
    );
    assert.equal(page.statusCode, 200, page.body);
    const body = page.json<{
      items: { facts: { arch: string } }[];
      total: number;
      limit: number;
      offset: number;
    }>();
    assert.equal(body.total, 2);
    assert.equal(body.items.length, 1);
    assert.equal(body.limit, 1);
    assert.equal(body.items[0]!.facts.arch, 'arm64');
    const bad = await get(`filter=${encodeURIComponent('arch==arm64;(')}`);
    assert.equal(bad.statusCode, 400);
    assert.equal(errorCode(bad), 'FLT_FILTER_INVALID');
    const sort = await get('sort=publicKey');
    assert.equal(sort.statusCode, 400);
    assert.equal(errorCode(sort), 'FLT_SORT_INVALID');
    for (const qs of ['limit=0', 'limit=100000', 'offset=-1', 'unknown=1']) {
      const res = await get(qs);
      assert.equal(res.statusCode, 400, qs);
      assert.equal(errorCode(res), 'FLT_VALIDATION');
    }
  });

  void it('registration keys: secret shown once, state computed, revoke is admin-only and idempotent', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: OperatorRoutes.registrationKeys,
      headers: bearer(t.adminToken),
      payload: { name: 'shown-once', maxUses: 2, expiresIn: '7d', tags: ['lab'] },
    });
    assert.equal(created.statusCode, 201);
    const { key, secret } = created.json<{
      key: { id: string; state: string; expiresAt: string };
      secret: string;
    }>();
    assert.equal(key.state, 'active');
    assert.ok(Date.parse(key.expiresAt) > Date.now() + 6 * 86_400_000);
    const shown = await t.app.inject({
      method: 'GET',
      url: `/api/v1/registration-keys/${key.id}`,
      headers: bearer(tokens.deployer),
    });
    assert.equal(shown.statusCode, 200);
    assert.ok(!shown.body.includes(secret), 'the secret is never shown again');
    const list = await t.app.inject({
      method: 'GET',
      url: OperatorRoutes.registrationKeys,
      headers: bearer(t.adminToken),
    });
    assert.ok(!list.body.includes(secret));
    for (const payload of [
      {},
      { name: 'x', expiresIn: 'soon' },
      { name: 'x', maxUses: 0 },
      { name: 'x', tags: ['no spaces'] },
      { name: 'x', expiresIn: '999999999w' },
    ]) {
      const res = await t.app.inject({
        method: 'POST',
        url: OperatorRoutes.registrationKeys,
        headers: bearer(t.adminToken),
        payload,
      });
      assert.equal(res.statusCode, 400, JSON.stringify(payload));
    }
    const first = await operatorPost(t, '/api/v1/registration-keys/:id/revoke', key.id, {});
    const again = await operatorPost(t, '/api/v1/registration-keys/:id/revoke', key.id, {});
    assert.equal(first.statusCode, 200);
    assert.deepEqual(again.json(), first.json());
    const audits = await t.ctx.db
      .selectFrom('audit_log')
      .select('action')
      .where('subject_id', '=', key.id)
      .orderBy('id')
      .execute();
    assert.deepEqual(
      audits.map((a) => a.action),
      ['regkey.create', 'regkey.revoke'],
    );
    const missing = await operatorPost(t, '/api/v1/registration-keys/:id/revoke', 'rk_missing', {});
    assert.equal(missing.statusCode, 404);
  });
});
