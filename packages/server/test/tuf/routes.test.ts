import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { ErrorEnvelopeSchema, FlotillaError } from '@flotilla/protocol';
import { tufRoutes } from '../../src/tuf/index.js';
import { initialised, release } from './fixture.js';

async function app(authorize?: (deviceId: string) => void) {
  const f = await initialised();
  await f.director.assign('dev-1', [{ path: release('web', '1.0.0').path }]);
  const server = Fastify();
  server.addSchema(ErrorEnvelopeSchema);
  await server.register(
    tufRoutes({
      image: f.image,
      director: f.director,
      authorizeImage: () => undefined,
      targetBytes: () => Promise.resolve(undefined),
      ...(authorize && { authorizeDevice: (_req, id) => authorize(id) }),
    }),
  );
  return { f, server };
}

void test('image metadata is served as JSON; versioned files are immutable (for the requester only), root.json and timestamp.json revalidated', async (t) => {
  const { server } = await app();
  t.after(() => server.close());
  const versioned = await server.inject({ method: 'GET', url: '/tuf/image/1.targets.json' });
  assert.equal(versioned.statusCode, 200);
  assert.match(String(versioned.headers['content-type']), /^application\/json/);
  assert.equal(versioned.headers['cache-control'], 'private, max-age=31536000, immutable');
  assert.equal(JSON.parse(versioned.body).signed._type, 'targets');
  for (const name of ['root.json', 'timestamp.json']) {
    const res = await server.inject({ method: 'GET', url: `/tuf/image/${name}` });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['cache-control'], 'private, no-cache');
  }
});

void test('unknown, unversioned and hostile names get a 404 error envelope', async (t) => {
  const { server } = await app();
  t.after(() => server.close());
  for (const url of [
    '/tuf/image/9.targets.json',
    '/tuf/image/targets.json',
    '/tuf/image/..%2F1.root.json',
    '/tuf/image/0.root.json',
    '/tuf/director/dev-1/x.json',
    '/tuf/director/a%2Fb/root.json',
  ]) {
    const res = await server.inject({ method: 'GET', url });
    assert.equal(res.statusCode, 404, url);
    assert.equal(JSON.parse(res.body).error.code, 'FLT_NOT_FOUND', url);
  }
});

void test('director metadata is served per device and the authorization hook can refuse', async (t) => {
  const { server } = await app((id) => {
    if (id !== 'dev-1') throw new FlotillaError('FLT_FORBIDDEN', 'not your director');
  });
  t.after(() => server.close());
  const ok = await server.inject({ method: 'GET', url: '/tuf/director/dev-1/1.targets.json' });
  assert.equal(ok.statusCode, 200);
  assert.ok(JSON.parse(ok.body).signed.targets[release('web', '1.0.0').path]);
  const root = await server.inject({ method: 'GET', url: '/tuf/director/dev-1/1.root.json' });
  assert.equal(root.statusCode, 200);
  const refused = await server.inject({ method: 'GET', url: '/tuf/director/dev-2/timestamp.json' });
  assert.equal(refused.statusCode, 403);
  assert.equal(JSON.parse(refused.body).error.code, 'FLT_FORBIDDEN');
});
