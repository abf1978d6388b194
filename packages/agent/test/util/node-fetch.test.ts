// node-kit's JSON client tests (packages/node-kit/test/json-client.test.ts), run on the agent's node:http fetch.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { DeviceState, FlotillaError } from '@flotilla/protocol';
import { JsonHttpClient } from '@flotilla/node-kit';
import { nodeFetch } from '../../src/util/node-fetch.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(t: TestContext, handler: Handler): Promise<JsonHttpClient> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as { port: number };
  return new JsonHttpClient({
    baseUrl: `http://127.0.0.1:${port}`,
    fetch: nodeFetch,
    timeoutMs: 10_000,
    maxResponseBytes: 4096,
  });
}

const state = { deviceId: 'd1', status: 'accepted', tags: [], stateVersion: 1, pollIntervalMs: 30_000 };
const isCode = (code: string) => (e: unknown) => e instanceof FlotillaError && e.code === code;

void test('a valid body is returned typed; headers and bearer token are sent', async (t) => {
  let auth: string | undefined;
  const client = await serve(t, (req, res) => {
    auth = req.headers.authorization;
    res
      .writeHead(200, { 'content-type': 'application/json', etag: '"1-accepted"' })
      .end(JSON.stringify(state));
  });
  const response = await client.request({
    method: 'GET',
    path: '/s',
    schema: DeviceState,
    token: 'flt_dt_x',
  });
  assert.deepEqual(response.body, state);
  assert.equal(response.headers.get('etag'), '"1-accepted"');
  assert.equal(auth, 'Bearer flt_dt_x');
});

void test('304 has no body', async (t) => {
  const client = await serve(t, (_req, res) => res.writeHead(304).end());
  const response = await client.request({ method: 'GET', path: '/s', schema: DeviceState });
  assert.equal(response.status, 304);
  assert.equal(response.body, null);
});

void test('error envelopes become FlotillaErrors with the server code; other errors get a generic one', async (t) => {
  const client = await serve(t, (req, res) => {
    if (req.url === '/revoked') {
      res
        .writeHead(403, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { code: 'FLT_DEVICE_REVOKED', message: 'gone' } }));
    } else {
      res.writeHead(502).end('<html>bad gateway</html>');
    }
  });
  await assert.rejects(
    client.request({ method: 'GET', path: '/revoked', schema: null }),
    isCode('FLT_DEVICE_REVOKED'),
  );
  await assert.rejects(
    client.request({ method: 'GET', path: '/proxy', schema: null }),
    isCode('FLT_INTERNAL'),
  );
});

void test('a body that breaks the protocol, is not JSON, or is too large is refused with FLT_NETWORK', async (t) => {
  const client = await serve(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.url === '/wrong') res.end(JSON.stringify({ ...state, stateVersion: -1 }));
    else if (req.url === '/text') res.end('hello');
    else if (req.url === '/declared') res.end('x'.repeat(5000));
    else {
      // No content-length: the bound must hold while streaming.
      res.write('x'.repeat(3000));
      res.end('x'.repeat(3000));
    }
  });
  await assert.rejects(
    client.request({ method: 'GET', path: '/wrong', schema: DeviceState }),
    (e: unknown) => {
      return (
        e instanceof FlotillaError &&
        e.code === 'FLT_NETWORK' &&
        /does not match the protocol/.test(e.message)
      );
    },
  );
  await assert.rejects(
    client.request({ method: 'GET', path: '/text', schema: DeviceState }),
    isCode('FLT_NETWORK'),
  );
  await assert.rejects(
    client.request({ method: 'GET', path: '/declared', schema: DeviceState }),
    /larger than 4096/,
  );
  await assert.rejects(
    client.request({ method: 'GET', path: '/streamed', schema: DeviceState }),
    /larger than 4096/,
  );
});

void test('a server that never answers times out with FLT_NETWORK; a refused connection too', async (t) => {
  const client = (await serve(t, () => undefined)).with({ timeoutMs: 500 });
  await assert.rejects(client.request({ method: 'GET', path: '/hang', schema: null }), (e: unknown) => {
    return e instanceof FlotillaError && e.code === 'FLT_NETWORK' && /no answer within 500ms/.test(e.message);
  });
  const nowhere = new JsonHttpClient({
    baseUrl: 'http://127.0.0.1:9',
    fetch: nodeFetch,
    timeoutMs: 500,
    maxResponseBytes: 4096,
  });
  await assert.rejects(nowhere.request({ method: 'GET', path: '/', schema: null }), isCode('FLT_NETWORK'));
});

void test('a redirect is refused rather than followed with the token', async (t) => {
  const client = await serve(t, (_req, res) =>
    res.writeHead(302, { location: 'http://example.invalid/' }).end(),
  );
  await assert.rejects(
    client.request({ method: 'GET', path: '/', schema: null, token: 'flt_dt_secret' }),
    isCode('FLT_NETWORK'),
  );
});

void test('a 429 carries the Retry-After wait', async (t) => {
  const client = await serve(t, (req, res) => {
    const body = {
      error: { code: 'FLT_RATE_LIMITED', message: 'slow down', details: { retryAfterSeconds: 7 } },
    };
    if (req.url === '/proxy') res.writeHead(429, { 'retry-after': '3' }).end('Too Many Requests');
    else
      res
        .writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' })
        .end(JSON.stringify(body));
  });
  const limited = await client
    .request({ method: 'GET', path: '/s', schema: DeviceState })
    .catch((e: unknown) => e);
  assert.ok(isCode('FLT_RATE_LIMITED')(limited));
  assert.equal((limited as FlotillaError).retryAfterMs, 7000);
  // A proxy's bare 429 is a rate limit too (retried, not dropped as a refusal).
  const proxy = await client
    .request({ method: 'GET', path: '/proxy', schema: DeviceState })
    .catch((e: unknown) => e);
  assert.ok(isCode('FLT_RATE_LIMITED')(proxy));
  assert.equal((proxy as FlotillaError).retryAfterMs, 3000);
});

void test('query parameters, a binary body, per-request timeout and a default token', async (t) => {
  let seen: { url?: string; type?: string; auth?: string; body?: string } = {};
  const base = await serve(t, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen = { url: req.url, type: req.headers['content-type'], auth: req.headers.authorization, body };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(state));
    });
  });
  const client = base.with({ token: 'flt_at_default' });
  const response = await client.request({
    method: 'POST',
    path: '/p',
    query: { a: 'x y', skip: undefined, n: 3 },
    raw: { bytes: Buffer.from('packed'), contentType: 'application/x-test' },
    schema: DeviceState,
    timeoutMs: 2000,
  });
  assert.deepEqual(response.body, state);
  assert.deepEqual(seen, {
    url: '/p?a=x+y&n=3',
    type: 'application/x-test',
    auth: 'Bearer flt_at_default',
    body: 'packed',
  });
});

void test('send returns the parsed body unchecked and refuses a 2xx that is not JSON', async (t) => {
  const client = await serve(t, (req, res) => {
    if (req.url === '/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{"x":1}');
    else if (req.url === '/empty') res.writeHead(204).end();
    else res.writeHead(200).end('<html>login</html>');
  });
  assert.deepEqual((await client.send({ method: 'GET', path: '/json' })).body, { x: 1 });
  assert.equal((await client.send({ method: 'GET', path: '/empty' })).body, undefined);
  await assert.rejects(client.send({ method: 'GET', path: '/html' }), isCode('FLT_NETWORK'));
});

void test('the agent client does not load undici (issue 20: the idle agent stays off fetch)', async (t) => {
  const server = createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}'),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as { port: number };
  const { agentHttpClient } = await import('../../src/client/http.js');
  const client = agentHttpClient(`http://127.0.0.1:${port}`, {
    requestTimeoutMs: 5000,
    maxResponseBytes: 4096,
  });
  // Node's list of the internal modules it has loaded (the tests above use node:http only).
  const loaded = (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
  const undiciLoaded = (): boolean => loaded.some((m) => m.includes('undici'));
  assert.equal(undiciLoaded(), false);
  await client.send({ method: 'GET', path: '/' });
  assert.equal(undiciLoaded(), false);
});

void test('https: the certificate is checked; a CA in NODE_EXTRA_CA_CERTS is trusted, as with fetch', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flt-node-fetch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
  } catch {
    t.skip('openssl is not installed');
    return;
  }
  const server = createHttpsServer(
    { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
    (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(state)),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as { port: number };
  const baseUrl = `https://127.0.0.1:${port}`;
  const client = new JsonHttpClient({ baseUrl, fetch: nodeFetch, timeoutMs: 10_000, maxResponseBytes: 4096 });
  await assert.rejects(client.request({ method: 'GET', path: '/s', schema: DeviceState }), (e: unknown) => {
    return isCode('FLT_NETWORK')(e) && /SELF_SIGNED|self.signed/i.test((e as Error).message);
  });
  // NODE_EXTRA_CA_CERTS is read when Node starts: a child process with it set.
  const script = `import { nodeFetch } from ${JSON.stringify(new URL('../../src/util/node-fetch.js', import.meta.url).href)};
const r = await nodeFetch(${JSON.stringify(`${baseUrl}/s`)});
process.stdout.write(String(r.status) + ' ' + (await r.text()));`;
  const { stdout: out } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') },
  });
  assert.equal(out, `200 ${JSON.stringify(state)}`);
});

void test('cancelling an error answer that arrived whole keeps the connection for the next request', async (t) => {
  // The TUF fetcher cancels the body of every 404 (`2.root.json`, the end of the root walk).
  let connections = 0;
  const server = createServer((req, res) => {
    if (req.url === '/missing')
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"FLT_NOT_FOUND"}}');
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as { port: number };
  for (let i = 0; i < 3; i++) {
    const missing = await nodeFetch(`http://127.0.0.1:${port}/missing`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const found = await nodeFetch(`http://127.0.0.1:${port}/found`);
    assert.equal(await found.text(), '{}');
  }
  assert.equal(connections, 1);
});

void test('cancelling a body still on its way ends the connection', async (t) => {
  let closed = 0;
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write('x'.repeat(1000)); // and never ends
  });
  server.on('connection', (socket) => socket.on('close', () => closed++));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as { port: number };
  const response = await nodeFetch(`http://127.0.0.1:${port}/stream`);
  await response.body?.cancel();
  for (let i = 0; i < 100 && closed === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(closed, 1);
});
