import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { OperatorRoutes, routePath } from '@flotilla/protocol';
import type { CreateTokenResponse, TokenList } from '@flotilla/protocol';
import { ManualClock } from '../helpers/clock.js';
import { TEST_ADMIN_PASSWORD, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { call, errorCode, sessionCookieOf } from '../helpers/http.js';

forEachDialect((dialect) => {
  let t: TestApp;
  let clock: ManualClock;
  beforeEach(async () => {
    clock = new ManualClock();
    t = await createTestApp({ dialect, clock });
  });
  afterEach(() => t.close());

  const login = (username: string, password: string) =>
    call(t.app, { method: 'POST', url: OperatorRoutes.login, body: { username, password } });

  void it('login sets an HttpOnly SameSite=Strict session cookie that authenticates', async () => {
    const res = await login('admin', TEST_ADMIN_PASSWORD);
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().user.username, 'admin');
    const raw = String(res.headers['set-cookie']);
    assert.match(raw, /HttpOnly/);
    assert.match(raw, /SameSite=Strict/);
    assert.match(raw, /Path=\//);
    const cookie = sessionCookieOf(res);
    assert.match(cookie, /^flt_ss_/);
    const me = await call(t.app, { method: 'GET', url: OperatorRoutes.me, cookie });
    assert.equal(me.statusCode, 200);
    assert.deepEqual(
      { user: me.json().user.username, via: me.json().via },
      { user: 'admin', via: 'session' },
    );
    const stored = await t.ctx.db.selectFrom('sessions').select('token_hash').execute();
    assert.ok(
      stored.every((s) => s.token_hash !== cookie),
      'the session secret is stored hashed',
    );
  });

  void it('a wrong password and an unknown user get the same answer, and both are audited', async () => {
    const wrong = await login('admin', 'not-the-password');
    const unknown = await login('nobody', 'whatever-password');
    for (const res of [wrong, unknown]) {
      assert.equal(res.statusCode, 401);
      assert.equal(errorCode(res), 'FLT_BAD_CREDENTIALS');
      assert.equal(res.json().error.message, wrong.json().error.message);
      assert.equal(res.headers['set-cookie'], undefined);
    }
    const failed = await t.ctx.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'user.login_failed')
      .execute();
    assert.equal(failed.length, 2);
    assert.ok(failed.every((f) => f.source_ip === '127.0.0.1'));
  });

  void it('logout ends the session: the old cookie no longer authenticates', async () => {
    const cookie = sessionCookieOf(await login('admin', TEST_ADMIN_PASSWORD));
    const out = await call(t.app, {
      method: 'POST',
      url: OperatorRoutes.logout,
      cookie,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(out.statusCode, 204);
    assert.match(String(out.headers['set-cookie']), /flotilla_session=;/);
    const me = await call(t.app, { method: 'GET', url: OperatorRoutes.me, cookie });
    assert.equal(me.statusCode, 401);
    assert.equal(errorCode(me), 'FLT_UNAUTHENTICATED');
    const actions = (await t.ctx.db.selectFrom('audit_log').select('action').execute()).map((r) => r.action);
    assert.ok(actions.includes('user.login') && actions.includes('user.logout'));
  });

  void it('a session expires after sessionTtlMs', async () => {
    const cookie = sessionCookieOf(await login('admin', TEST_ADMIN_PASSWORD));
    clock.advance(t.config.sessionTtlMs + 1000);
    const me = await call(t.app, { method: 'GET', url: OperatorRoutes.me, cookie });
    assert.equal(me.statusCode, 401);
  });

  void it('API tokens: created once with a secret, listed without it, revoked for good', async () => {
    const created = await call(t.app, {
      method: 'POST',
      url: OperatorRoutes.tokens,
      token: t.adminToken,
      body: { name: 'ci', expiresIn: '1h' },
    });
    assert.equal(created.statusCode, 201);
    const { token, secret } = created.json<CreateTokenResponse>();
    assert.match(secret, /^flt_at_/);
    assert.equal(token.name, 'ci');
    const me = await call(t.app, { method: 'GET', url: OperatorRoutes.me, token: secret });
    assert.deepEqual(me.json().via, 'token');
    const list = await call(t.app, { method: 'GET', url: OperatorRoutes.tokens, token: secret });
    assert.ok(list.json<TokenList>().items.some((i) => i.id === token.id));
    assert.ok(!list.body.includes(secret), 'the secret is never listed');
    const used = list.json<TokenList>().items.find((i) => i.id === token.id);
    assert.equal(used?.lastUsedAt, clock.now().toISOString());

    const revoked = await call(t.app, {
      method: 'DELETE',
      url: routePath(OperatorRoutes.token, { id: token.id }),
      token: t.adminToken,
    });
    assert.equal(revoked.statusCode, 204);
    const after = await call(t.app, { method: 'GET', url: OperatorRoutes.me, token: secret });
    assert.equal(after.statusCode, 401);
    assert.equal(errorCode(after), 'FLT_TOKEN_INVALID');
  });

  void it('an expired API token is refused with FLT_TOKEN_EXPIRED', async () => {
    const created = await call(t.app, {
      method: 'POST',
      url: OperatorRoutes.tokens,
      token: t.adminToken,
      body: { name: 'short', expiresIn: '5m' },
    });
    const { secret } = created.json();
    clock.advance(5 * 60_000);
    const res = await call(t.app, { method: 'GET', url: OperatorRoutes.me, token: secret });
    assert.equal(res.statusCode, 401);
    assert.equal(errorCode(res), 'FLT_TOKEN_EXPIRED');
  });

  void it('unknown, malformed or foreign bearer tokens are refused; device tokens are left to the device gateway', async () => {
    for (const header of [
      'Bearer flt_at_unknown',
      'Bearer',
      'Basic YWRtaW46eA==',
      'Bearer flt_rk_something',
    ]) {
      const res = await t.app.inject({
        method: 'GET',
        url: OperatorRoutes.me,
        headers: { authorization: header },
      });
      assert.equal(res.statusCode, 401, header);
      assert.equal(errorCode(res), 'FLT_TOKEN_INVALID', header);
    }
    const device = await t.app.inject({
      method: 'GET',
      url: OperatorRoutes.me,
      headers: { authorization: 'Bearer flt_dt_abc' },
    });
    assert.equal(errorCode(device), 'FLT_UNAUTHENTICATED');
  });

  void it("a user revokes only their own tokens; another user's token looks absent", async () => {
    const alice = await t.operator('deployer');
    const bob = await t.operator('viewer');
    const bobTokens = await call(t.app, { method: 'GET', url: OperatorRoutes.tokens, token: bob.token });
    const bobTokenId = bobTokens.json<TokenList>().items[0]!.id;
    const aliceView = await call(t.app, { method: 'GET', url: OperatorRoutes.tokens, token: alice.token });
    assert.ok(aliceView.json<TokenList>().items.every((i) => i.userId === alice.user.id));
    const res = await call(t.app, {
      method: 'DELETE',
      url: routePath(OperatorRoutes.token, { id: bobTokenId }),
      token: alice.token,
    });
    assert.equal(res.statusCode, 404);
    assert.equal(
      (await call(t.app, { method: 'GET', url: OperatorRoutes.me, token: bob.token })).statusCode,
      200,
    );
    const adminView = await call(t.app, {
      method: 'GET',
      url: `${OperatorRoutes.tokens}?userId=${bob.user.id}`,
      token: t.adminToken,
    });
    assert.deepEqual(
      adminView.json<TokenList>().items.map((i) => i.id),
      [bobTokenId],
    );
  });

  void it('disabling a user stops their sessions and tokens at once', async () => {
    const op = await t.operator('deployer');
    const cookie = sessionCookieOf(await login(op.user.username, op.password));
    const res = await call(t.app, {
      method: 'PATCH',
      url: routePath(OperatorRoutes.user, { id: op.user.id }),
      token: t.adminToken,
      body: { disabled: true },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().disabled, true);
    assert.equal(
      (await call(t.app, { method: 'GET', url: OperatorRoutes.me, token: op.token })).statusCode,
      401,
    );
    assert.equal((await call(t.app, { method: 'GET', url: OperatorRoutes.me, cookie })).statusCode, 401);
    const again = await login(op.user.username, op.password);
    assert.equal(errorCode(again), 'FLT_BAD_CREDENTIALS');
  });

  void it('re-enabling a disabled user does not bring back their API tokens (real HTTP)', async () => {
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    assert.ok(address && typeof address === 'object');
    const base = `http://127.0.0.1:${address.port}`;
    const op = await t.operator('deployer');
    const send = async (method: string, url: string, token: string, body?: unknown) => {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const userUrl = routePath(OperatorRoutes.user, { id: op.user.id });
    assert.equal((await send('GET', OperatorRoutes.me, op.token)).status, 200);
    assert.equal((await send('PATCH', userUrl, t.adminToken, { disabled: true })).status, 200);
    assert.equal((await send('GET', OperatorRoutes.me, op.token)).status, 401);
    const enabled = await send('PATCH', userUrl, t.adminToken, { disabled: false });
    assert.equal(enabled.status, 200);
    assert.equal(enabled.body.disabled, false);
    const me = await send('GET', OperatorRoutes.me, op.token);
    assert.equal(me.status, 401);
    assert.equal((me.body.error as { code: string }).code, 'FLT_TOKEN_INVALID');
    // The tokens were revoked when the user was disabled, visibly and in the audit log.
    const left = await send('GET', `${OperatorRoutes.tokens}?userId=${op.user.id}`, t.adminToken);
    assert.deepEqual((left.body as unknown as TokenList).items, []);
    const audit = await t.ctx.db
      .selectFrom('audit_log')
      .select('details')
      .where('action', '=', 'user.update')
      .where('subject_id', '=', op.user.id)
      .orderBy('id')
      .execute();
    assert.deepEqual(JSON.parse(audit[0]?.details ?? '{}'), { disabled: true, tokensRevoked: 1 });
    // The user can log in again and create a new token, which works.
    const session = await fetch(`${base}${OperatorRoutes.login}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: op.user.username, password: op.password }),
    });
    assert.equal(session.status, 200);
    await session.arrayBuffer();
  });
});
