/**
 * Enrollment: happy paths (auto-accept and manual), idempotent re-enrollment, and every refusal
 * with its status and code — each of which must write nothing at all.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { DeviceRoutes } from '@flotilla/protocol';
import { generateEd25519, hashSecret, randomSecret } from '@flotilla/node-kit';
import type { LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import {
  challenge,
  createKey,
  deviceToken,
  enroll,
  enrollNonce,
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

  void it('auto-accept key: device accepted, tags are key ∪ requested, facts stored, key used once, audited', async () => {
    const { key, secret } = await createKey(t, {
      name: 'fleet',
      tags: ['eu', 'prod'],
      maxUses: 5,
      autoAccept: true,
    });
    assert.match(secret, /^flt_rk_/);
    const res = await enrollRaw(t, secret, {
      tags: ['canary', 'eu'],
      facts: { hostname: 'edge-1', arch: 'arm64', cpus: 4, 'agent.version': '0.1.0' },
    });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json<{ deviceId: string; status: string }>();
    assert.equal(body.status, 'accepted');
    const device = await t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${body.deviceId}`,
      headers: bearer(t.adminToken),
    });
    const d = device.json<{
      tags: string[];
      facts: Record<string, unknown>;
      hostname: string;
      registrationKeyId: string;
    }>();
    assert.deepEqual(d.tags, ['canary', 'eu', 'prod']);
    assert.deepEqual(d.facts, { hostname: 'edge-1', arch: 'arm64', cpus: 4, 'agent.version': '0.1.0' });
    assert.equal(d.hostname, 'edge-1');
    assert.equal(d.registrationKeyId, key.id);
    const keys = await t.app.inject({
      method: 'GET',
      url: '/api/v1/registration-keys',
      headers: bearer(t.adminToken),
    });
    const listed = keys
      .json<{ items: { id: string; uses: number; state: string }[] }>()
      .items.find((k) => k.id === key.id);
    assert.equal(listed?.uses, 1);
    assert.equal(listed?.state, 'active');
    const audit = await t.ctx.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'device.enroll')
      .where('subject_id', '=', body.deviceId)
      .execute();
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.actor_type, 'device');
    assert.equal(audit[0]!.actor_id, body.deviceId);
  });

  void it('manual key: device pending until accepted, and a pending device still gets a token', async () => {
    const { secret } = await createKey(t, { name: 'manual' });
    const device = await enroll(t, secret);
    assert.equal(device.status, 'pending');
    const token = await deviceToken(t, device);
    const state = await t.app.inject({ method: 'GET', url: DeviceRoutes.state, headers: bearer(token) });
    assert.equal(state.statusCode, 200);
    assert.equal(state.json<{ status: string }>().status, 'pending');
    const accepted = await operatorPost(t, '/api/v1/devices/:id/accept', device.id, {});
    assert.equal(accepted.statusCode, 200, accepted.body);
    assert.equal(accepted.json<{ status: string }>().status, 'accepted');
  });

  void it('re-enrolling the same public key is idempotent and does not use up the key', async () => {
    const { key, secret } = await createKey(t, { name: 'once', maxUses: 1, autoAccept: true });
    const kp = generateEd25519();
    const first = await enroll(t, secret, { kp });
    const before = await snapshot(t);
    const again = await enrollRaw(t, secret, { kp, tags: ['ignored'] });
    assert.equal(again.statusCode, 200, again.body);
    assert.deepEqual(again.json(), { deviceId: first.id, status: 'accepted' });
    const after = await snapshot(t);
    assert.equal(after.devices, before.devices);
    assert.equal(after.uses, before.uses);
    assert.equal(after.nonces, before.nonces, 'only the nonce it used is gone');
    const row = await t.ctx.db
      .selectFrom('registration_keys')
      .select('uses')
      .where('id', '=', key.id)
      .executeTakeFirstOrThrow();
    assert.equal(Number(row.uses), 1);
  });

  /** Asserts a refusal and that no table changed (the nonce stays unused). */
  async function refused(
    run: (nonce: string) => Promise<LightMyRequestResponse>,
    status: number,
    code: string,
  ) {
    const nonce = await enrollNonce(t);
    const before = await snapshot(t);
    const res = await run(nonce);
    assert.equal(res.statusCode, status, res.body);
    assert.equal(res.json<{ error: { code: string } }>().error.code, code);
    assert.deepEqual(await snapshot(t), before, 'a refusal writes nothing');
  }

  void it('refuses a revoked registration key', async () => {
    const { key, secret } = await createKey(t, { name: 'revoked', autoAccept: true });
    const revoke = await operatorPost(t, '/api/v1/registration-keys/:id/revoke', key.id, {});
    assert.equal(revoke.statusCode, 200);
    assert.equal(revoke.json<{ state: string }>().state, 'revoked');
    await refused((nonce) => enrollRaw(t, secret, { nonce }), 403, 'FLT_REGKEY_REVOKED');
  });

  if (dialect === 'postgres') {
    // Only PostgreSQL lets another transaction commit between enrollment's read of the key and its
    // UPDATE (SQLite runs one write transaction at a time); the UPDATE's own conditions must refuse it.
    void it('a key revoked while an enrollment is in flight refuses that enrollment', async () => {
      const { key, secret } = await createKey(t, { name: 'revoked-in-flight', autoAccept: true });
      const nonce = await enrollNonce(t);
      const before = await snapshot(t);
      const revoker = new pg.Client({ connectionString: t.config.database });
      await revoker.connect();
      try {
        // The revocation holds the key's row until it commits: enrollment reads the key as active
        // (a plain read does not wait), then its UPDATE of the same row waits here.
        await revoker.query('begin');
        await revoker.query('update registration_keys set revoked_at = $1 where id = $2', [
          new Date().toISOString(),
          key.id,
        ]);
        let settled = false;
        const enrolling = enrollRaw(t, secret, { nonce }).finally(() => (settled = true));
        for (;;) {
          const waiting = await revoker.query<{ n: string }>(
            `select count(*) as n from pg_locks l join pg_stat_activity a on a.pid = l.pid
             where not l.granted and a.datname = current_database()`,
          );
          if (Number(waiting.rows[0]?.n) > 0) break;
          assert.equal(settled, false, 'the enrollment finished without waiting for the key row');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await revoker.query('commit');
        const res = await enrolling;
        assert.equal(res.statusCode, 403, res.body);
        assert.equal(errorCode(res), 'FLT_REGKEY_REVOKED');
      } finally {
        await revoker.query('rollback').catch(() => undefined);
        await revoker.end();
      }
      assert.deepEqual(await snapshot(t), before, 'the refused enrollment wrote nothing');
    });
  }

  void it('refuses an expired registration key', async () => {
    const { key, secret } = await createKey(t, { name: 'expiring', expiresIn: '1h' });
    await t.ctx.db
      .updateTable('registration_keys')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('id', '=', key.id)
      .execute();
    await refused((nonce) => enrollRaw(t, secret, { nonce }), 403, 'FLT_REGKEY_EXPIRED');
  });

  void it('refuses an exhausted registration key', async () => {
    const { secret } = await createKey(t, { name: 'single', maxUses: 1 });
    await enroll(t, secret);
    await refused((nonce) => enrollRaw(t, secret, { nonce }), 403, 'FLT_REGKEY_EXHAUSTED');
  });

  void it('refuses an unknown registration key', async () => {
    await refused((nonce) => enrollRaw(t, randomSecret('flt_rk_'), { nonce }), 401, 'FLT_REGKEY_INVALID');
  });

  void it('refuses a wrong signature: another key pair, another registration key, garbage', async () => {
    const { secret } = await createKey(t, { name: 'sig' });
    const other = generateEd25519();
    const nonce = await enrollNonce(t);
    const { signMessage, enrollmentMessage } = await import('@flotilla/node-kit');
    const kp = generateEd25519();
    await refused(
      () =>
        enrollRaw(t, secret, {
          kp,
          nonce,
          signature: signMessage(other.privateKeyPem, enrollmentMessage(nonce, kp.publicKey, secret)),
        }),
      401,
      'FLT_SIGNATURE_INVALID',
    );
    await refused(
      () => enrollRaw(t, secret, { nonce, signedKey: randomSecret('flt_rk_') }),
      401,
      'FLT_SIGNATURE_INVALID',
    );
    await refused(
      () => enrollRaw(t, secret, { nonce, signature: 'A'.repeat(86) }),
      401,
      'FLT_SIGNATURE_INVALID',
    );
    // Refusals did not consume the nonce: its rightful use still succeeds.
    assert.equal((await enrollRaw(t, secret, { nonce })).statusCode, 201);
  });

  void it('refuses an enrollment without a signature', async () => {
    const { secret } = await createKey(t, { name: 'nosig' });
    const kp = generateEd25519();
    const nonce = await enrollNonce(t);
    await refused(
      () =>
        t.app.inject({
          method: 'POST',
          url: DeviceRoutes.enroll,
          payload: { registrationKey: secret, publicKey: kp.publicKey, nonce },
        }),
      401,
      'FLT_SIGNATURE_INVALID',
    );
  });

  void it('refuses a replayed nonce', async () => {
    const { secret } = await createKey(t, { name: 'replay', autoAccept: true });
    const nonce = await enrollNonce(t);
    await enroll(t, secret, { nonce });
    await refused(() => enrollRaw(t, secret, { nonce }), 401, 'FLT_NONCE_INVALID');
  });

  void it('refuses an expired nonce', async () => {
    const { secret } = await createKey(t, { name: 'stale' });
    const nonce = await enrollNonce(t);
    await t.ctx.db
      .updateTable('device_nonces')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('nonce_hash', '=', hashSecret(nonce))
      .execute();
    await refused(() => enrollRaw(t, secret, { nonce }), 401, 'FLT_NONCE_INVALID');
  });

  void it('refuses a nonce issued for another purpose (a token challenge)', async () => {
    const { secret } = await createKey(t, { name: 'purpose', autoAccept: true });
    const device = await enroll(t, secret);
    const c = await challenge(t, device.id);
    const tokenChallenge = c.json<{ challenge: string }>().challenge;
    const { secret: other } = await createKey(t, { name: 'purpose-2', autoAccept: true });
    await refused(() => enrollRaw(t, other, { nonce: tokenChallenge }), 401, 'FLT_NONCE_INVALID');
  });

  void it('refuses a malformed public key and malformed bodies', async () => {
    const { secret } = await createKey(t, { name: 'malformed' });
    const nonce = await enrollNonce(t);
    const bad = await t.app.inject({
      method: 'POST',
      url: DeviceRoutes.enroll,
      payload: { registrationKey: secret, publicKey: '_'.repeat(43), nonce, signature: 'A'.repeat(86) },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(errorCode(bad), 'FLT_PUBLIC_KEY_INVALID');
    for (const payload of [
      {},
      { registrationKey: secret, publicKey: 'x', nonce },
      { registrationKey: secret, publicKey: 'A'.repeat(43), nonce, extra: 1 },
    ]) {
      const res = await t.app.inject({ method: 'POST', url: DeviceRoutes.enroll, payload });
      assert.equal(res.statusCode, 400);
      assert.equal(errorCode(res), 'FLT_VALIDATION');
    }
    const facts = await enrollRaw(t, secret, { facts: { 'bad name': 'x' } });
    assert.equal(facts.statusCode, 400);
  });

  void it('refuses to re-enroll a revoked device', async () => {
    const { secret } = await createKey(t, { name: 'revoked-device', autoAccept: true });
    const kp = generateEd25519();
    const device = await enroll(t, secret, { kp });
    assert.equal(
      (await operatorPost(t, '/api/v1/devices/:id/revoke', device.id, { reason: 'stolen' })).statusCode,
      200,
    );
    await refused((nonce) => enrollRaw(t, secret, { kp, nonce }), 403, 'FLT_DEVICE_REVOKED');
  });

  void it('concurrent enrollments never exceed max uses', async () => {
    const { key, secret } = await createKey(t, { name: 'race', maxUses: 3, autoAccept: true });
    const nonces = await Promise.all(Array.from({ length: 12 }, () => enrollNonce(t)));
    const results = await Promise.all(nonces.map((nonce) => enrollRaw(t, secret, { nonce })));
    const created = results.filter((r) => r.statusCode === 201);
    const exhausted = results.filter((r) => r.statusCode === 403 && errorCode(r) === 'FLT_REGKEY_EXHAUSTED');
    assert.equal(created.length, 3);
    assert.equal(exhausted.length, 9);
    const row = await t.ctx.db
      .selectFrom('registration_keys')
      .select('uses')
      .where('id', '=', key.id)
      .executeTakeFirstOrThrow();
    assert.equal(Number(row.uses), 3);
    const devices = await t.ctx.db
      .selectFrom('devices')
      .select('id')
      .where('registration_key_id', '=', key.id)
      .execute();
    assert.equal(devices.length, 3);
  });

  void it('concurrent enrollments of one public key create one device', async () => {
    const { secret } = await createKey(t, { name: 'same-key', maxUses: 10, autoAccept: true });
    const kp = generateEd25519();
    const nonces = await Promise.all(Array.from({ length: 4 }, () => enrollNonce(t)));
    const results = await Promise.all(nonces.map((nonce) => enrollRaw(t, secret, { kp, nonce })));
    assert.deepEqual(results.map((r) => r.statusCode).sort(), [200, 200, 200, 201]);
    const ids = new Set(results.map((r) => r.json<{ deviceId: string }>().deviceId));
    assert.equal(ids.size, 1);
  });
});
