/**
 * Device tokens, the state poll (ETag / 304) and inventory reports, over HTTP with real
 * Ed25519 signatures.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { DeviceRoutes } from '@flotilla/protocol';
import { generateEd25519, hashSecret, signMessage, tokenChallengeMessage } from '@flotilla/node-kit';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import {
  acceptedDevice,
  challenge,
  createKey,
  deviceToken,
  enroll,
  errorCode,
  operatorPost,
  snapshot,
  tokenRaw,
} from './fixtures.js';

forEachDialect((dialect) => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ dialect });
  });
  after(() => t.close());

  const state = (token: string, etag?: string) =>
    t.app.inject({
      method: 'GET',
      url: DeviceRoutes.state,
      headers: { ...bearer(token), ...(etag ? { 'if-none-match': etag } : {}) },
    });
  const putInventory = (token: string, facts: unknown) =>
    t.app.inject({
      method: 'PUT',
      url: DeviceRoutes.inventory,
      headers: bearer(token),
      payload: { facts } as object,
    });

  void it('a signed challenge yields a flt_dt_ token that expires after deviceTokenTtlMs', async () => {
    const { secret } = await createKey(t, { name: 'tok', autoAccept: true });
    const device = await enroll(t, secret);
    const res = await tokenRaw(t, device);
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json<{ token: string; expiresAt: string; status: string }>();
    assert.match(body.token, /^flt_dt_/);
    assert.equal(body.status, 'accepted');
    const ttl = Date.parse(body.expiresAt) - Date.now();
    assert.ok(ttl > t.config.deviceTokenTtlMs - 60_000 && ttl <= t.config.deviceTokenTtlMs);
    const row = await t.ctx.db
      .selectFrom('device_tokens')
      .selectAll()
      .where('token_hash', '=', hashSecret(body.token))
      .executeTakeFirst();
    assert.equal(row?.device_id, device.id, 'stored only as its hash');
  });

  void it('a challenge is single use, bound to its device, and needs the device key', async () => {
    const { secret } = await createKey(t, { name: 'chal', autoAccept: true });
    const a = await enroll(t, secret);
    const b = await enroll(t, secret);
    const c = (await challenge(t, a.id)).json<{ challenge: string }>().challenge;
    // Signed by another key: refused, challenge not consumed.
    const forged = await t.app.inject({
      method: 'POST',
      url: DeviceRoutes.token,
      payload: {
        deviceId: a.id,
        challenge: c,
        signature: signMessage(b.kp.privateKeyPem, tokenChallengeMessage(c, a.id)),
      },
    });
    assert.equal(forged.statusCode, 401);
    assert.equal(errorCode(forged), 'FLT_SIGNATURE_INVALID');
    // Used for another device: refused.
    const other = await tokenRaw(t, b, c);
    assert.equal(errorCode(other), 'FLT_NONCE_INVALID');
    assert.equal((await tokenRaw(t, a, c)).statusCode, 200);
    const replay = await tokenRaw(t, a, c);
    assert.equal(replay.statusCode, 401);
    assert.equal(errorCode(replay), 'FLT_NONCE_INVALID');
  });

  void it('an enrollment nonce is no token challenge', async () => {
    const { secret } = await createKey(t, { name: 'cross', autoAccept: true });
    const device = await enroll(t, secret);
    const nonce = (await t.app.inject({ method: 'POST', url: DeviceRoutes.enrollNonce })).json<{
      nonce: string;
    }>().nonce;
    const res = await tokenRaw(t, device, nonce);
    assert.equal(errorCode(res), 'FLT_NONCE_INVALID');
  });

  void it('unknown, rejected and revoked devices get no challenge and no token', async () => {
    const unknown = await challenge(t, 'a'.repeat(32));
    assert.equal(unknown.statusCode, 404);
    assert.equal(errorCode(unknown), 'FLT_DEVICE_NOT_FOUND');
    const { secret } = await createKey(t, { name: 'manual-tok' });
    const rejected = await enroll(t, secret);
    const pendingChallenge = (await challenge(t, rejected.id)).json<{ challenge: string }>().challenge;
    assert.equal((await operatorPost(t, '/api/v1/devices/:id/reject', rejected.id, {})).statusCode, 200);
    const refused = await challenge(t, rejected.id);
    assert.equal(refused.statusCode, 403);
    assert.equal(errorCode(refused), 'FLT_DEVICE_REJECTED');
    const late = await tokenRaw(t, rejected, pendingChallenge);
    assert.equal(late.statusCode, 403);
    assert.equal(errorCode(late), 'FLT_DEVICE_REJECTED');
    assert.equal((await operatorPost(t, '/api/v1/devices/:id/revoke', rejected.id, {})).statusCode, 200);
    assert.equal(errorCode(await challenge(t, rejected.id)), 'FLT_DEVICE_REVOKED');
  });

  void it('state: 200 with ETag, 304 on If-None-Match, 200 again after a change', async () => {
    const d = await acceptedDevice(t);
    const first = await state(d.token);
    assert.equal(first.statusCode, 200, first.body);
    const etag = String(first.headers.etag);
    const body = first.json<{
      deviceId: string;
      status: string;
      stateVersion: number;
      pollIntervalMs: number;
      tags: string[];
    }>();
    assert.equal(etag, `"${body.stateVersion}-accepted"`);
    assert.equal(body.deviceId, d.id);
    assert.equal(body.pollIntervalMs, t.config.devicePollIntervalMs);
    const cached = await state(d.token, etag);
    assert.equal(cached.statusCode, 304);
    assert.equal(cached.body, '');
    assert.equal(
      cached.headers['content-length'],
      undefined,
      'no body announced (keep-alive clients would wait for it)',
    );
    assert.equal((await state(d.token, `W/${etag}`)).statusCode, 304);
    assert.equal((await state(d.token, `"0-x", ${etag}`)).statusCode, 304);
    assert.equal(
      (await operatorPost(t, '/api/v1/devices/:id/tags', d.id, { add: ['canary'] })).statusCode,
      200,
    );
    const changed = await state(d.token, etag);
    assert.equal(changed.statusCode, 200);
    assert.notEqual(changed.headers.etag, etag);
    assert.deepEqual(changed.json<{ tags: string[] }>().tags, ['canary']);
  });

  void it('polls write nothing; last-seen times are flushed in a batch', async () => {
    const d = await acceptedDevice(t);
    await t.ctx.db.updateTable('devices').set({ last_seen_at: null }).where('id', '=', d.id).execute();
    const before = await snapshot(t);
    for (let i = 0; i < 5; i++) assert.equal((await state(d.token)).statusCode, 200);
    assert.deepEqual(await snapshot(t), before);
    const row = await t.ctx.db
      .selectFrom('devices')
      .select('last_seen_at')
      .where('id', '=', d.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.last_seen_at, null, 'not written per poll');
    const shown = await t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${d.id}`,
      headers: bearer(t.adminToken),
    });
    assert.equal(shown.json<{ online: boolean }>().online, true, 'the API already sees the poll');
  });

  void it('bad tokens: none, operator token, unknown, expired', async () => {
    const none = await t.app.inject({ method: 'GET', url: DeviceRoutes.state });
    assert.equal(none.statusCode, 401);
    assert.equal(errorCode(none), 'FLT_UNAUTHENTICATED');
    const operator = await state(t.adminToken);
    assert.equal(operator.statusCode, 401);
    assert.equal(errorCode(operator), 'FLT_TOKEN_INVALID');
    const unknown = await state(`flt_dt_${'b'.repeat(32)}.nothing`);
    assert.equal(errorCode(unknown), 'FLT_TOKEN_INVALID');
    const d = await acceptedDevice(t);
    await t.ctx.db
      .updateTable('device_tokens')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('token_hash', '=', hashSecret(d.token))
      .execute();
    const expired = await state(d.token);
    assert.equal(expired.statusCode, 401);
    assert.equal(errorCode(expired), 'FLT_TOKEN_EXPIRED');
  });

  void it('a revoked device is refused at once with FLT_DEVICE_REVOKED, and its tokens are gone', async () => {
    const d = await acceptedDevice(t);
    const second = await deviceToken(t, d);
    assert.equal((await state(d.token)).statusCode, 200);
    const revoke = await operatorPost(t, '/api/v1/devices/:id/revoke', d.id, { reason: 'lost' });
    assert.equal(revoke.statusCode, 200);
    for (const token of [d.token, second]) {
      const res = await state(token);
      assert.equal(res.statusCode, 403);
      assert.equal(errorCode(res), 'FLT_DEVICE_REVOKED');
      assert.equal(errorCode(await putInventory(token, {})), 'FLT_DEVICE_REVOKED');
    }
    const tokens = await t.ctx.db
      .selectFrom('device_tokens')
      .select('token_hash')
      .where('device_id', '=', d.id)
      .execute();
    assert.equal(tokens.length, 0);
  });

  void it('inventory replaces facts, updates hostname and agent version, audits only changes', async () => {
    const d = await acceptedDevice(t, { facts: { hostname: 'old', stale: 'x' } });
    const facts = {
      hostname: 'edge-7',
      'agent.version': '1.2.3',
      cpus: 8,
      gpu: false,
      nics: ['eth0', 'wlan0'],
      empty: [],
    };
    const audits = async () =>
      (
        await t.ctx.db
          .selectFrom('audit_log')
          .select('id')
          .where('action', '=', 'device.inventory')
          .where('subject_id', '=', d.id)
          .execute()
      ).length;
    const res = await putInventory(d.token, facts);
    assert.equal(res.statusCode, 204, res.body);
    const shown = await t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${d.id}`,
      headers: bearer(t.adminToken),
    });
    const device = shown.json<{ facts: unknown; hostname: string }>();
    assert.deepEqual(device.facts, facts);
    assert.equal(device.hostname, 'edge-7');
    const row = await t.ctx.db
      .selectFrom('devices')
      .select('agent_version')
      .where('id', '=', d.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.agent_version, '1.2.3');
    assert.equal(await audits(), 1);
    assert.equal((await putInventory(d.token, { ...facts })).statusCode, 204);
    assert.equal(await audits(), 1, 'an unchanged report is not audited');
    const rows = await t.ctx.db
      .selectFrom('device_facts')
      .selectAll()
      .where('device_id', '=', d.id)
      .where('name', '=', 'nics')
      .execute();
    assert.equal(rows.length, 2, 'one row per list item');
  });

  void it('concurrent inventory reports of one device all succeed; the facts are one of them', async () => {
    const d = await acceptedDevice(t);
    const reports = Array.from({ length: 6 }, (_, i) => ({ n: i, list: [`a${i}`, `b${i}`] }));
    const results = await Promise.all(reports.map((facts) => putInventory(d.token, facts)));
    assert.deepEqual(
      results.map((r) => r.statusCode),
      reports.map(() => 204),
    );
    const shown = await t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${d.id}`,
      headers: bearer(t.adminToken),
    });
    const facts = shown.json<{ facts: unknown }>().facts;
    assert.ok(reports.some((r) => isDeepStrictEqual(r, facts)));
  });

  void it('inventory refuses bad facts and changes nothing', async () => {
    const d = await acceptedDevice(t, { facts: { keep: 'me' } });
    const before = await snapshot(t);
    for (const facts of [
      { 'bad name': 1 },
      { ok: { nested: true } },
      { long: 'x'.repeat(2000) },
      { list: [1, 2] },
      'nope',
    ]) {
      const res = await putInventory(d.token, facts);
      assert.equal(res.statusCode, 400, JSON.stringify(facts));
      assert.equal(errorCode(res), 'FLT_VALIDATION');
    }
    assert.deepEqual(await snapshot(t), before);
  });

  void it('a key the device lost: a new key pair enrolls as a new device; the old one can be revoked', async () => {
    const { secret } = await createKey(t, { name: 'recover', autoAccept: true });
    const old = await enroll(t, secret);
    const fresh = await enroll(t, secret, { kp: generateEd25519() });
    assert.notEqual(fresh.id, old.id);
    assert.equal((await operatorPost(t, '/api/v1/devices/:id/revoke', old.id, {})).statusCode, 200);
    assert.equal((await tokenRaw(t, fresh)).statusCode, 200);
  });
});
