/**
 * Generic hostile input against EVERY registered route (collected at run time, so it covers every
 * route group, including ones added later): malformed JSON, a body of the wrong type, unknown
 * fields, a body nested 20,000 deep, and a body over bodyLimitBytes must each get a 4xx error envelope, never a 500, over
 * real HTTP; and oversized headers must not take the server down.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import type { RouteOptions } from 'fastify';
import { resolveServerConfig } from '../../src/config.js';
import { startServer } from '../../src/main.js';
import type { RunningServer } from '../../src/main.js';
import { TEST_ADMIN_PASSWORD, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { createTempPostgres } from '../helpers/postgres.js';
import type { TempPostgres } from '../helpers/postgres.js';

interface SeenRoute {
  method: string;
  url: string;
  hasBody: boolean;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function fillParams(url: string): string {
  return url.replace(/:[A-Za-z0-9_]+/g, 'hostile-id').replace(/\*$/, 'hostile');
}

async function envelopeProblem(res: Response): Promise<string | null> {
  const text = await res.text();
  if (res.status < 400 || res.status >= 500) return `HTTP ${res.status}: ${text.slice(0, 200)}`;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (
      typeof body.error?.code !== 'string' ||
      !body.error.code.startsWith('FLT_') ||
      typeof body.error.message !== 'string'
    ) {
      return `HTTP ${res.status} without the error envelope: ${text.slice(0, 200)}`;
    }
  } catch {
    return `HTTP ${res.status} with a non-JSON body: ${text.slice(0, 200)}`;
  }
  return null;
}

/** Sends raw bytes and returns the raw answer (until the server closes the connection). */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.end(bytes);
  });
}

forEachDialect((dialect) => {
  const routes: SeenRoute[] = [];
  let t: TestApp;
  let base: string;

  before(async () => {
    t = await createTestApp({
      dialect,
      config: { bodyLimitBytes: 64 * 1024 },
      beforeRoutes: (app) => {
        app.addHook('onRoute', (route: RouteOptions) => {
          const methods = Array.isArray(route.method) ? route.method : [route.method];
          for (const method of methods) {
            routes.push({
              method,
              url: route.url,
              hasBody: route.schema?.body !== undefined && BODY_METHODS.has(method),
            });
          }
        });
      },
    });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    assert.ok(address && typeof address === 'object');
    base = `http://127.0.0.1:${address.port}`;
  });
  after(() => t.close());

  void it('collects every route, including the operator routes with bodies', () => {
    const withBody = routes.filter((r) => r.hasBody).map((r) => `${r.method} ${r.url}`);
    for (const expected of [
      'POST /api/v1/auth/login',
      'POST /api/v1/users',
      'PATCH /api/v1/users/:id',
      'POST /api/v1/tokens',
    ]) {
      assert.ok(withBody.includes(expected), `${expected} not seen among ${withBody.join(', ')}`);
    }
  });

  void it('every route with a body answers hostile bodies with a 4xx envelope, never a 500', async () => {
    const oversize = JSON.stringify({ pad: 'x'.repeat(t.config.bodyLimitBytes + 1) });
    const cases: [string, string, number | null][] = [
      ['malformed JSON', '{"unterminated": ', 400],
      ['a JSON array', '[1, 2, 3]', 400],
      ['a JSON string', '"just text"', 400],
      ['a JSON number', '42', 400],
      ['JSON null', 'null', null],
      ['unknown fields only', JSON.stringify({ __hostile_unknown_field__: true }), 400],
      ['prototype pollution', '{"__proto__": {"isAdmin": true}}', 400],
      ['a body over bodyLimitBytes', oversize, 413],
    ];
    const failures: string[] = [];
    const targets = routes.filter((r) => r.hasBody);
    assert.ok(targets.length > 0);
    for (const route of targets) {
      for (const [label, body, status] of cases) {
        const res = await fetch(`${base}${fillParams(route.url)}`, {
          method: route.method,
          headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
          body,
        });
        if (status !== null && res.status !== status)
          failures.push(`${route.method} ${route.url} with ${label}: expected ${status}, got ${res.status}`);
        const problem = await envelopeProblem(res);
        if (problem) failures.push(`${route.method} ${route.url} with ${label}: ${problem}`);
      }
      const deep = await fetch(`${base}${fillParams(route.url)}`, {
        method: route.method,
        headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
        body: `{"x":${'['.repeat(20_000)}${']'.repeat(20_000)}}`,
      });
      const deepCode =
        deep.status === 400 ? ((await deep.json()) as { error: { code: string } }).error.code : '';
      // A route with a smaller body limit refuses the 40 KB before parsing (413) instead.
      if (deepCode !== 'FLT_JSON_TOO_DEEP' && deep.status !== 413)
        failures.push(`${route.method} ${route.url} nested 20,000 deep: HTTP ${deep.status} ${deepCode}`);
      if (deep.status === 413) await deep.arrayBuffer();
      const wrongType = await fetch(`${base}${fillParams(route.url)}`, {
        method: route.method,
        headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'text/plain' },
        body: 'name=value',
      });
      const problem = await envelopeProblem(wrongType);
      if (problem) failures.push(`${route.method} ${route.url} with text/plain: ${problem}`);
    }
    assert.deepEqual(failures, []);
  });

  void it('every route answers unknown query parameters and bad ids without a 500', async () => {
    const failures: string[] = [];
    for (const route of routes.filter((r) => !r.url.startsWith('/docs'))) {
      for (const suffix of ['?__hostile=1&limit=-5', '%00', '/%2e%2e/%2e%2e']) {
        const res = await fetch(`${base}${fillParams(route.url)}${suffix}`, {
          method: route.method,
          headers: { authorization: `Bearer ${t.adminToken}` },
        });
        if (res.status >= 500) failures.push(`${route.method} ${route.url}${suffix}: HTTP ${res.status}`);
        await res.arrayBuffer();
      }
    }
    assert.deepEqual(failures, []);
  });

  void it('known routes: a valid body plus an unknown field is refused and changes nothing', async () => {
    const before = (await t.ctx.db.selectFrom('users').select('id').execute()).length;
    const res = await fetch(`${base}/api/v1/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'eve', password: 'eve-password', role: 'viewer', isAdmin: true }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; details: { problems: string[] } } };
    assert.equal(body.error.code, 'FLT_VALIDATION');
    assert.ok(body.error.details.problems.some((p) => p.includes('isAdmin')));
    assert.equal((await t.ctx.db.selectFrom('users').select('id').execute()).length, before);
    const login = await fetch(`${base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: TEST_ADMIN_PASSWORD, remember: true }),
    });
    assert.equal(login.status, 400);
    await login.arrayBuffer();
  });

  void it('keeps serving after all of it', async () => {
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  });
});

forEachDialect((dialect) => {
  let dir: string;
  let pg: TempPostgres | null = null;
  let server: RunningServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flt-hostile-'));
    pg = dialect === 'postgres' ? await createTempPostgres() : null;
    const config = resolveServerConfig({
      env: {
        FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
        FLOTILLA_LOG_LEVEL: 'silent',
        FLOTILLA_MAX_HEADER_BYTES: '4096',
      },
      flags: { dataDir: dir, listen: '127.0.0.1:0', ...(pg ? { database: pg.url } : {}) },
    });
    server = await startServer(config);
  });
  after(async () => {
    await server.close();
    await pg?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('oversized headers get 431 with the envelope and the server keeps serving', async () => {
    const port = Number(new URL(server.url).port);
    const answer = await rawRequest(
      port,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`,
    );
    assert.match(answer, /^HTTP\/1\.1 431 /);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string } };
    assert.equal(body.error.code, 'FLT_HEADERS_TOO_LARGE');

    const garbage = await rawRequest(port, 'THIS IS NOT HTTP\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 /);
    assert.match(garbage, /FLT_BAD_REQUEST/);

    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});
