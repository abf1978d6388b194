import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { FlotillaError, TufRoutes } from '@flotilla/protocol';
import { newImageRoot, nextTargets, serializeMetadata, signMetadata } from '@flotilla/node-kit';
import type { TufOnlineKeys, TufStatus } from '@flotilla/protocol';
import {
  initLocalTrust,
  registerTufMetrics,
  signReleaseLocally,
  startTufRefresher,
  tufOperatorRoutes,
} from '../../src/tuf/index.js';
import type { TufAccess } from '../../src/tuf/index.js';
import { DAY_MS, fixture, release } from './fixture.js';

const ADMIN = 'Bearer admin';
const VIEWER = 'Bearer viewer';

async function app(t: { after(fn: () => Promise<void>): void }) {
  const f = fixture();
  const audited: string[] = [];
  const server = Fastify();
  const authorize = (request: { headers: Record<string, unknown> }, access: TufAccess) => {
    const who = request.headers.authorization;
    if (who !== ADMIN && who !== VIEWER) throw new FlotillaError('FLT_UNAUTHENTICATED', 'log in first');
    if (access === 'write' && who !== ADMIN) throw new FlotillaError('FLT_FORBIDDEN', 'admins only');
  };
  await server.register(
    tufOperatorRoutes({
      image: f.image,
      authorize,
      onSubmitted: (_req, result) => void audited.push(`${result.role}:${result.version}`),
    }),
  );
  t.after(() => server.close());
  return { f, server, audited };
}

void test('keys init over the operator API: online keys, root upload, targets upload, status', async (t) => {
  const { f, server, audited } = await app(t);
  const keysRes = await server.inject({
    method: 'GET',
    url: TufRoutes.onlineKeys,
    headers: { authorization: VIEWER },
  });
  assert.equal(keysRes.statusCode, 200);
  const online = keysRes.json<TufOnlineKeys>();
  const root = newImageRoot({
    rootKeys: [f.rootKey.key],
    targetsKeys: [f.targetsKey.key],
    online,
    expires: new Date(f.clock.now().getTime() + 20 * DAY_MS),
  });
  await signMetadata(root, [f.rootKey]);
  const rootBody = serializeMetadata(root).toString();
  const forbidden = await server.inject({
    method: 'POST',
    url: TufRoutes.root,
    headers: { authorization: VIEWER, 'content-type': 'application/json' },
    payload: rootBody,
  });
  assert.equal(forbidden.statusCode, 403);
  assert.equal(forbidden.json<{ error: { code: string } }>().error.code, 'FLT_FORBIDDEN');
  const accepted = await server.inject({
    method: 'POST',
    url: TufRoutes.root,
    headers: { authorization: ADMIN, 'content-type': 'application/json' },
    payload: rootBody,
  });
  assert.equal(accepted.statusCode, 200, accepted.body);
  assert.deepEqual(accepted.json(), { role: 'root', version: 1 });
  const targets = nextTargets(
    undefined,
    [release('web', '1.0.0')],
    new Date(f.clock.now().getTime() + 90 * DAY_MS),
  );
  await signMetadata(targets, [f.targetsKey]);
  const targetsRes = await server.inject({
    method: 'POST',
    url: TufRoutes.targets,
    headers: { authorization: ADMIN, 'content-type': 'application/json' },
    payload: serializeMetadata(targets).toString(),
  });
  assert.deepEqual(targetsRes.json(), { role: 'targets', version: 1, snapshot: 1, timestamp: 1 });
  assert.deepEqual(audited, ['root:1', 'targets:1']);
  const status = (
    await server.inject({ method: 'GET', url: TufRoutes.status, headers: { authorization: VIEWER } })
  ).json<TufStatus>();
  assert.equal(status.initialized, true);
  assert.equal(status.root?.version, 1);
  assert.equal(status.timestamp?.version, 1);
  assert.equal(status.snapshot?.version, 1);
  assert.deepEqual(
    status.warnings.map((w) => [w.role, w.command]),
    [['root', 'flotilla keys renew --role root']],
    'the root expires in 20 days, inside the 30-day warning window',
  );
});

void test('unauthenticated requests, non-JSON bodies and forged metadata are refused and change nothing', async (t) => {
  const { f, server } = await app(t);
  assert.equal((await server.inject({ method: 'GET', url: TufRoutes.status })).statusCode, 401);
  const notJson = await server.inject({
    method: 'POST',
    url: TufRoutes.root,
    headers: { authorization: ADMIN, 'content-type': 'application/json' },
    payload: '"a string"',
  });
  assert.equal(notJson.statusCode, 400);
  const forged = newImageRoot({
    rootKeys: [f.rootKey.key],
    targetsKeys: [f.targetsKey.key],
    online: f.image.onlinePublicKeys(),
    expires: new Date(f.clock.now().getTime() + DAY_MS),
  });
  await signMetadata(forged, [f.targetsKey]);
  const res = await server.inject({
    method: 'POST',
    url: TufRoutes.root,
    headers: { authorization: ADMIN, 'content-type': 'application/json' },
    payload: serializeMetadata(forged).toString(),
  });
  assert.equal(res.statusCode, 422);
  assert.equal(res.json<{ error: { code: string } }>().error.code, 'FLT_TUF_SIGNATURE');
  const status = (
    await server.inject({ method: 'GET', url: TufRoutes.status, headers: { authorization: VIEWER } })
  ).json<TufStatus>();
  assert.deepEqual(status, { initialized: false, warnings: [] });
});

void test('convenience mode signs releases with local offline keys through the same checks', async () => {
  const f = fixture();
  const keys = { root: f.rootKey, targets: f.targetsKey };
  await initLocalTrust(f.image, keys, f.clock);
  await initLocalTrust(f.image, keys, f.clock);
  assert.equal((await f.image.targets())?.signed.version, 1);
  assert.deepEqual(await signReleaseLocally(f.image, keys, release('web', '2.0.0', 'b'), f.clock), {
    targets: 2,
    snapshot: 2,
    timestamp: 2,
  });
  assert.ok(await f.image.target(release('web', '2.0.0', 'b').path));
  await assert.rejects(
    signReleaseLocally(f.image, { ...keys, targets: f.keys.snapshot }, release('web', '3', 'c'), f.clock),
    { code: 'FLT_TUF_SIGNATURE' },
  );
});

void test('metrics expose expiry per role and the number of offline expiry warnings', async () => {
  const f = fixture();
  await initLocalTrust(
    f.image,
    { root: f.rootKey, targets: f.targetsKey, lifetimeSeconds: 10 * 86_400 },
    f.clock,
  );
  const registry = new Registry();
  registerTufMetrics(registry, f.image, f.clock);
  const text = await registry.metrics();
  assert.match(text, /flotilla_tuf_expiry_seconds\{role="root"\} 864000/);
  assert.match(text, /flotilla_tuf_expiry_seconds\{role="timestamp"\} 86400/);
  assert.match(text, /flotilla_tuf_offline_expiry_warnings 2/);
});

void test('the refresher re-signs online metadata on its own and stops cleanly', async () => {
  const f = fixture();
  await initLocalTrust(f.image, { root: f.rootKey, targets: f.targetsKey }, f.clock);
  await f.director.initDevice('dev-1');
  const refresher = startTufRefresher({
    image: f.image,
    director: f.director,
    log: pino({ level: 'silent' }),
    intervalMs: 3_600_000,
  });
  f.clock.advance(5 * DAY_MS);
  await refresher.runOnce();
  await refresher.stop();
  const status = await f.image.readFile('timestamp.json');
  assert.ok(status);
  assert.equal(JSON.parse(status.toString()).signed.version, 2);
  assert.equal((await f.director.targets('dev-1'))?.signed.version, 2);
});
