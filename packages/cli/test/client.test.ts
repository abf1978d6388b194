import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { FlotillaError, RegistrationKeyList, isFlotillaError } from '@flotilla/protocol';
import { ApiClient } from '../src/api/client.js';
import { normalizeServerUrl } from '../src/api/server-url.js';
import { scriptedServer, sendJson } from '@flotilla/testkit';

const hasCode = (code: string) => (e: unknown) => isFlotillaError(e) && e.code === code;

void test('success bodies are validated and the token is sent as a Bearer token', async (t) => {
  const srv = await scriptedServer((_req, res) => sendJson(res, 200, { items: [] }));
  t.after(() => srv.close());
  const client = new ApiClient({ baseUrl: srv.url, token: 'flt_at_x' });
  const body = await client.request('GET', '/api/v1/registration-keys', RegistrationKeyList, {
    query: { a: 'x y', skip: undefined, n: 3 },
  });
  assert.deepEqual(body, { items: [] });
  assert.equal(srv.requests[0]?.headers.authorization, 'Bearer flt_at_x');
  assert.equal(srv.requests[0]?.url, '/api/v1/registration-keys?a=x+y&n=3');
});

void test("an error envelope becomes the server's FlotillaError with its code and details", async (t) => {
  const srv = await scriptedServer((_req, res) =>
    sendJson(res, 409, {
      error: { code: 'FLT_DEVICE_STATE_CONFLICT', message: 'already revoked', details: { x: 1 } },
    }),
  );
  t.after(() => srv.close());
  const client = new ApiClient({ baseUrl: srv.url });
  await assert.rejects(client.requestVoid('POST', '/x', { body: {} }), (e) => {
    assert.ok(e instanceof FlotillaError);
    assert.equal(e.code, 'FLT_DEVICE_STATE_CONFLICT');
    assert.equal(e.message, 'already revoked');
    assert.deepEqual(e.details, { x: 1 });
    return true;
  });
  assert.equal(srv.requests[0]?.headers['content-type'], 'application/json');
});

void test('responses that break the protocol are FLT_NETWORK errors, not crashes', async (t) => {
  const replies: [number, string][] = [
    [200, '<html>proxy login</html>'],
    [200, JSON.stringify({ items: [{ id: 'k1' }] })],
    [502, 'Bad Gateway'],
  ];
  const srv = await scriptedServer((_req, res) => {
    const [status, text] = replies.shift() ?? [500, ''];
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(text);
  });
  t.after(() => srv.close());
  const client = new ApiClient({ baseUrl: srv.url });
  await assert.rejects(client.request('GET', '/a', RegistrationKeyList), hasCode('FLT_NETWORK'));
  await assert.rejects(client.request('GET', '/a', RegistrationKeyList), (e) => {
    assert.ok(hasCode('FLT_NETWORK')(e));
    assert.ok(((e as FlotillaError).details as { problems: string[] }).problems.length > 0);
    return true;
  });
  // A non-envelope error status maps to a generic code by status.
  await assert.rejects(client.request('GET', '/a', RegistrationKeyList), hasCode('FLT_INTERNAL'));
});

void test('an unreachable server and a server that never answers are FLT_NETWORK errors', async (t) => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((r) => closed.close(() => r()));
  await assert.rejects(
    new ApiClient({ baseUrl: `http://127.0.0.1:${port}` }).requestVoid('GET', '/'),
    (e) => hasCode('FLT_NETWORK')(e) && /cannot reach/.test((e as Error).message),
  );

  const silent = await scriptedServer(() => undefined);
  t.after(() => silent.close());
  await assert.rejects(
    new ApiClient({ baseUrl: silent.url, timeoutMs: 100 }).requestVoid('GET', '/'),
    (e) => hasCode('FLT_NETWORK')(e) && /no answer/.test((e as Error).message),
  );
});

void test('server URLs are normalized and anything but plain http(s) is refused', () => {
  assert.equal(normalizeServerUrl('http://Example.COM:7070/'), 'http://example.com:7070');
  assert.equal(normalizeServerUrl(' https://h/flotilla/ '), 'https://h/flotilla');
  for (const bad of ['example.com', 'ftp://h', 'http://u:p@h', 'http://h/?x=1', 'http://h/#f', '']) {
    assert.throws(() => normalizeServerUrl(bad), hasCode('FLT_VALIDATION'), bad);
  }
});
