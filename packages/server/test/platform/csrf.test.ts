import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { OperatorRoutes } from '@flotilla/protocol';
import { TEST_ADMIN_PASSWORD, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode, sessionCookieOf } from '../helpers/http.js';

forEachDialect((dialect) => {
  let t: TestApp;
  let cookie: string;
  beforeEach(async () => {
    t = await createTestApp({ dialect });
    const res = await t.app.inject({
      method: 'POST',
      url: OperatorRoutes.login,
      payload: { username: 'admin', password: TEST_ADMIN_PASSWORD },
    });
    cookie = sessionCookieOf(res);
  });
  afterEach(() => t.close());

  const createToken = (headers: Record<string, string>, payload: string) =>
    t.app.inject({
      method: 'POST',
      url: OperatorRoutes.tokens,
      headers: { cookie: `flotilla_session=${cookie}`, host: 'flotilla.example:7070', ...headers },
      payload,
    });
  const tokenCount = async () => (await t.ctx.db.selectFrom('api_tokens').select('id').execute()).length;

  void it('a cookie write as a form or text post is refused with FLT_CSRF and changes nothing', async () => {
    const before = await tokenCount();
    for (const type of [
      'application/x-www-form-urlencoded',
      'text/plain',
      'multipart/form-data; boundary=x',
    ]) {
      const res = await createToken({ 'content-type': type }, 'name=evil');
      assert.equal(res.statusCode, 403, type);
      assert.equal(errorCode(res), 'FLT_CSRF', type);
    }
    assert.equal(await tokenCount(), before);
  });

  void it('a cookie write from another Origin is refused; the same Origin is accepted', async () => {
    const body = JSON.stringify({ name: 'web' });
    for (const origin of ['https://evil.example', 'null', 'http://flotilla.example:7071', 'garbage']) {
      const res = await createToken({ 'content-type': 'application/json', origin }, body);
      assert.equal(errorCode(res), 'FLT_CSRF', origin);
    }
    const ok = await createToken(
      { 'content-type': 'application/json', origin: 'http://flotilla.example:7070' },
      body,
    );
    assert.equal(ok.statusCode, 201);
    const noOrigin = await createToken({ 'content-type': 'application/json' }, body);
    assert.equal(noOrigin.statusCode, 201);
  });

  void it('bearer-token requests are not subject to the cookie rule', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: OperatorRoutes.tokens,
      headers: {
        authorization: `Bearer ${t.adminToken}`,
        'content-type': 'application/json',
        origin: 'https://automation.example',
      },
      payload: JSON.stringify({ name: 'bot' }),
    });
    assert.equal(res.statusCode, 201);
  });

  void it('cookie reads need no Content-Type', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: OperatorRoutes.me,
      headers: { cookie: `flotilla_session=${cookie}`, origin: 'https://evil.example' },
    });
    assert.equal(res.statusCode, 200);
  });
});
