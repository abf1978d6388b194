/**
 * The agent's TUF assignment as the update engine calls it (`tufAssignment`): the device token on every
 * metadata request, a refused (expired) token renewed once, and an image repository with no release
 * yet as a quiet, typed state rather than an error.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { isFlotillaError } from '@flotilla/protocol';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import type { ObjectFetcher } from '../../src/fetch/fetcher.js';
import { ROOT_MAX_BYTES } from '../../src/tuf/index.js';
import { tufAssignment } from '../../src/update/tuf-source.js';
import { memoryLogger } from '../helpers/agent.js';
import type { LogLine } from '../helpers/agent.js';
import { stateDb } from '../update/fixtures.js';
import { world } from './fixture.js';
import type { World } from './fixture.js';
import { provision } from './helpers.js';

const DEVICE = 'dev-1';

/** A world served where the agent looks for it: `<server>/tuf/image/` and `<server>/tuf/director/<id>/`. */
async function served(t: TestContext): Promise<World> {
  const w = await world({ image: 'tuf/image', director: `tuf/director/${DEVICE}` });
  t.after(() => w.close());
  await provision(w);
  return w;
}

/** A fetcher that must not be called: the root objects are in the cache already. */
const noFetch: ObjectFetcher = {
  fetch: (ids) => Promise.reject(new Error(`unexpected fetch of ${ids.join(', ')}`)),
};

async function source(
  t: TestContext,
  w: World,
  tokens: { get: () => string; invalidate: () => void },
  lines?: ReturnType<typeof memoryLogger>,
  stateVersion?: () => number | null,
) {
  const db = stateDb(t, w.dataDir);
  t.after(() => db.close());
  const cache = await ChunkCache.open({ dir: join(w.dataDir, 'chunks'), db, maxBytes: 1 << 30 });
  await cache.putObject(w.web1.hashes.sha256!, w.web1Bytes);
  return tufAssignment({
    serverUrl: w.server.url,
    deviceId: DEVICE,
    ...(stateVersion && { stateVersion }),
    dataDir: w.dataDir,
    trustedRootFile: null,
    token: () => Promise.resolve(tokens.get()),
    invalidateToken: () => tokens.invalidate(),
    cache,
    fetcher: noFetch,
    logger: (lines ?? memoryLogger()).logger,
    timeoutMs: 10_000,
  });
}

void test('the device token goes with every TUF request; a refused token is renewed once and the refresh retried', async (t) => {
  const w = await served(t);
  w.server.requireAuthorization = 'Bearer flt_dt_fresh';
  let current = 'flt_dt_stale';
  let invalidated = 0;
  const assignment = await source(t, w, {
    get: () => current,
    invalidate: () => {
      invalidated += 1;
      current = 'flt_dt_fresh';
    },
  });
  const releases = await assignment(AbortSignal.timeout(30_000));
  assert.deepEqual(
    releases.map((r) => `${r.app}@${r.version}`),
    ['web@1.0.0'],
  );
  assert.equal(invalidated, 1, 'the refused token was dropped once');
  assert.deepEqual(w.server.refused, ['Bearer flt_dt_stale'], 'only the stale token was refused');
});

void test('a token refused again after renewal is an error naming the HTTP status, not a loop', async (t) => {
  const w = await served(t);
  w.server.requireAuthorization = 'Bearer flt_dt_never-sent';
  let invalidated = 0;
  const assignment = await source(t, w, {
    get: () => 'flt_dt_refused',
    invalidate: () => {
      invalidated += 1;
    },
  });
  await assert.rejects(assignment(AbortSignal.timeout(30_000)), (e: unknown) => {
    assert.ok(isFlotillaError(e));
    assert.equal(e.code, 'FLT_TUF_FETCH');
    assert.equal((e.details as { status?: number }).status, 401);
    return true;
  });
  assert.equal(invalidated, 1);
});

void test('the state version the server told goes with every TUF request, none before one was told', async (t) => {
  const w = await served(t);
  let told: number | null = null;
  const tokens = { get: () => 'flt_dt_x', invalidate: () => undefined };
  const assignment = await source(t, w, tokens, undefined, () => told);
  await assignment(AbortSignal.timeout(30_000));
  assert.ok(w.server.told.length > 0);
  assert.deepEqual(new Set(w.server.told.map((r) => r.stateVersion)), new Set([undefined]));
  w.server.told.length = 0;
  told = 42;
  await assignment(AbortSignal.timeout(30_000));
  const director = w.server.told.filter((r) => r.path.startsWith(`/tuf/director/${DEVICE}/`));
  assert.ok(director.length >= 2, 'the director was read');
  assert.deepEqual(new Set(w.server.told.map((r) => r.stateVersion)), new Set(['42']));
});

function atLeastWarn(lines: LogLine[]): LogLine[] {
  return lines.filter((l) => l.level >= 40);
}

void test('an image repository with a root but no release yet is a quiet "no releases yet", logged at debug', async (t) => {
  const w = await served(t);
  // `flotilla keys init` ran, no release was signed: only the root is served; the director assigns nothing.
  for (const name of ['timestamp.json', '1.snapshot.json', '1.targets.json'])
    w.server.files.delete(`/tuf/image/${name}`);
  w.director.targets = [];
  await w.director.publish();
  const log = memoryLogger();
  const assignment = await source(t, w, { get: () => 'flt_dt_x', invalidate: () => undefined }, log);
  assert.deepEqual(await assignment(AbortSignal.timeout(30_000)), []);
  assert.deepEqual(atLeastWarn(log.lines), [], 'nothing at warn or error');
  const line = log.lines.find((l) => /no releases yet/.test(l.msg));
  assert.ok(line, `a debug line says so: ${JSON.stringify(log.lines)}`);
  assert.equal(line.level, 20);
  assert.equal(line.repository, 'image');
  // Again, now with trusted metadata on disk: still quiet.
  assert.deepEqual(await assignment(AbortSignal.timeout(30_000)), []);
  assert.deepEqual(atLeastWarn(log.lines), []);
});

void test('once the first release is published the same device installs it', async (t) => {
  const w = await served(t);
  const published = new Map(
    ['timestamp.json', '1.snapshot.json', '1.targets.json'].map((n) => [n, w.image.get(n)] as const),
  );
  for (const name of published.keys()) w.server.files.delete(`/tuf/image/${name}`);
  const directorTargets = w.director.targets;
  w.director.targets = [];
  await w.director.publish();
  const assignment = await source(t, w, { get: () => 'flt_dt_x', invalidate: () => undefined });
  assert.deepEqual(await assignment(AbortSignal.timeout(30_000)), []);
  for (const [name, bytes] of published) w.image.put(name, bytes);
  w.director.targets = directorTargets;
  await w.director.publish();
  const releases = await assignment(AbortSignal.timeout(30_000));
  assert.deepEqual(
    releases.map((r) => r.targetPath),
    [w.web1.path],
  );
});

void test('the director assigning a release the image repository has not published is still an error', async (t) => {
  const w = await served(t);
  for (const name of ['timestamp.json', '1.snapshot.json', '1.targets.json'])
    w.server.files.delete(`/tuf/image/${name}`);
  const log = memoryLogger();
  const assignment = await source(t, w, { get: () => 'flt_dt_x', invalidate: () => undefined }, log);
  await assert.rejects(assignment(AbortSignal.timeout(30_000)), (e: unknown) => {
    assert.ok(isFlotillaError(e));
    assert.equal(e.code, 'FLT_TUF_TARGET_MISSING');
    assert.equal((e.details as { path?: string }).path, w.web1.path);
    return true;
  });
});

void test('a trusted image timestamp that disappears from the server is an error, not "no releases"', async (t) => {
  const w = await served(t);
  const log = memoryLogger();
  const assignment = await source(t, w, { get: () => 'flt_dt_x', invalidate: () => undefined }, log);
  assert.equal((await assignment(AbortSignal.timeout(30_000))).length, 1);
  w.server.files.delete('/tuf/image/timestamp.json');
  w.director.targets = [];
  await w.director.publish();
  await assert.rejects(assignment(AbortSignal.timeout(30_000)), (e: unknown) => {
    assert.ok(isFlotillaError(e));
    assert.equal(e.code, 'FLT_TUF_FETCH');
    assert.equal((e.details as { status?: number }).status, 404);
    return true;
  });
});

/** A world whose roots the device has not been given: it trusts the server's first root (TOFU). */
async function unprovisioned(t: TestContext): Promise<World> {
  const w = await world({ image: 'tuf/image', director: `tuf/director/${DEVICE}` });
  t.after(() => w.close());
  return w;
}

void test('without a configured root the first root is downloaded and trusted on first use', async (t) => {
  const w = await unprovisioned(t);
  const assignment = await source(t, w, { get: () => 'flt_dt_x', invalidate: () => undefined });
  const releases = await assignment(AbortSignal.timeout(30_000));
  assert.deepEqual(
    releases.map((r) => r.targetPath),
    [w.web1.path],
  );
  assert.ok(existsSync(join(w.metadataDir, 'image', 'root.json')));
});

for (const [what, serve] of [
  [
    'larger than a root may be',
    (w: World) => w.server.files.set('/tuf/image/1.root.json', Buffer.alloc(ROOT_MAX_BYTES + 1, 0x20)),
  ],
  ['that never ends', (w: World) => w.server.endless.add('/tuf/image/1.root.json')],
] as const) {
  void test(`a first root ${what} is refused as FLT_TUF_LENGTH and nothing is trusted`, async (t) => {
    const w = await unprovisioned(t);
    serve(w);
    const assignment = await source(t, w, { get: () => 'flt_dt_x', invalidate: () => undefined });
    await assert.rejects(assignment(AbortSignal.timeout(30_000)), (e: unknown) => {
      assert.ok(isFlotillaError(e));
      assert.equal(e.code, 'FLT_TUF_LENGTH', e.message);
      assert.equal((e.details as { repository?: string }).repository, 'image');
      return true;
    });
    assert.equal(existsSync(join(w.metadataDir, 'image', 'root.json')), false);
  });
}
