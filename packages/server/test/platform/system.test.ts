import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { FLOTILLA_VERSION } from '@flotilla/protocol';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';

forEachDialect((dialect) => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ dialect });
  });
  after(() => t.close());

  void it('GET /api/v1/info answers without credentials', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/v1/info' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { name: 'flotilla', version: FLOTILLA_VERSION, database: dialect });
  });

  void it('healthz and readyz report ok while the database answers', async () => {
    assert.deepEqual((await t.app.inject({ method: 'GET', url: '/healthz' })).json(), { status: 'ok' });
    const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { status: 'ready', database: dialect });
  });

  void it('metrics count requests by route template, never by raw URL', async () => {
    await t.app.inject({
      method: 'GET',
      url: '/api/v1/users/usr_does_not_exist',
      headers: bearer(t.adminToken),
    });
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.match(res.body, /process_cpu_user_seconds_total/);
    assert.match(
      res.body,
      /flotilla_http_requests_total\{method="GET",route="\/api\/v1\/users\/:id",status="404"\} 1/,
    );
    assert.match(
      res.body,
      /flotilla_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="\/healthz"\}|flotilla_http_request_duration_seconds_count/,
    );
    assert.doesNotMatch(res.body, /usr_does_not_exist/);
  });

  void it('publishes OpenAPI 3 with security schemes and the error envelope on 4xx', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    const doc = res.json();
    assert.match(String(doc.openapi), /^3\./);
    assert.ok(doc.components.securitySchemes.bearerAuth);
    assert.ok(doc.components.securitySchemes.cookieAuth);
    assert.ok(doc.components.schemas.ErrorEnvelope);
    const login = doc.paths['/api/v1/auth/login'].post;
    assert.ok(login.requestBody.content['application/json'].schema);
    assert.equal(
      login.responses['4XX'].content['application/json'].schema.$ref,
      '#/components/schemas/ErrorEnvelope',
    );
    assert.ok(doc.paths['/api/v1/users/{id}'].patch);
    const docs = await t.app.inject({ method: 'GET', url: '/docs/' });
    assert.equal(docs.statusCode, 200);
    assert.match(docs.body, /swagger/i);
  });

  void it('an unknown route answers FLT_ROUTE_NOT_FOUND in the envelope', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/nope?x=1' });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, 'FLT_ROUTE_NOT_FOUND');
  });
});
