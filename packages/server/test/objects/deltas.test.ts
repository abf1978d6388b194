/**
 * File deltas over the real routes: pairs of file objects pushed through the normal push, answered
 * as a delta pack, decoded against the base content and verified chunk by chunk as the agent does;
 * the cases answered "none"; refusals before anything is computed; the cache; precomputation
 * between releases (route, audit, roles, after a deployment); GC of cache entries; and the event
 * loop staying free while a large delta is computed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import {
  DELTA_PACK_CONTENT_TYPE,
  DEVICE_REPORTS_ROUTE,
  isFlotillaError,
  MAX_DELTA_PAIRS_PER_REQUEST,
  OBJECT_GC_ROUTE,
  ObjectRoutes,
  RELEASE_DELTAS_ROUTE,
  ReleaseRoutes,
  routePath,
} from '@flotilla/protocol';
import type { DeltaPair, PrecomputeDeltasResponse, Release } from '@flotilla/protocol';
import {
  DEFAULT_DELTA_LEVEL,
  DEFAULT_MAX_DELTA_FILE_BYTES,
  DeltaKind,
  decodeDelta,
  deltaPairKey,
  parseFileObject,
  readDeltaPack,
  readFileContent,
  verifyFileContent,
  walkTree,
} from '@flotilla/store';
import type { DeltaRecord, FileObject } from '@flotilla/store';
import type { LightMyRequestResponse } from 'fastify';
import { acceptedDevice, createKey, deviceToken, enroll } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode } from '../helpers/http.js';
import { resolveServerConfig } from '../../src/config.js';
import { assignUpdate, publish, treeOf } from './push.js';
import type { BuiltTree } from './push.js';

async function metric(t: TestApp, name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = (await t.ctx.metrics.getSingleMetric(name)?.get())?.values ?? [];
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

/** The file object id at `path` of a built tree. */
async function fileId(tree: BuiltTree, path: string): Promise<string> {
  for await (const { path: p, entry } of walkTree(tree.store, tree.root))
    if (p === path && entry.kind === 'file') return entry.hash!;
  throw new Error(`no file ${path}`);
}

async function fileObject(tree: BuiltTree, id: string): Promise<FileObject> {
  return parseFileObject(await tree.store.getObject(id), { expectedId: id });
}

/** Text that compresses about as well as source code does, different per seed. */
function text(bytes: number, seed = 'x'): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', seed];
  const out: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `${words[(i * 7) % words.length]} ${i} ${randomBytes(6).toString('hex')}\n`;
    out.push(line);
    size += line.length;
  }
  return Buffer.from(out.join('')).subarray(0, bytes);
}

function edited(content: Buffer, at: number, insert: string): Buffer {
  return Buffer.concat([content.subarray(0, at), Buffer.from(insert), content.subarray(at + 10)]);
}

function requestDeltas(t: TestApp, token: string, pairs: unknown): Promise<LightMyRequestResponse> {
  return t.app.inject({
    method: 'POST',
    url: ObjectRoutes.deltas,
    headers: bearer(token),
    payload: { pairs } as object,
  });
}

async function records(res: LightMyRequestResponse, pairs: DeltaPair[]): Promise<DeltaRecord[]> {
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.headers['content-type'], DELTA_PACK_CONTENT_TYPE);
  const out: DeltaRecord[] = [];
  const expected = new Set(pairs.map((p) => deltaPairKey(p.target, p.base)));
  for await (const r of readDeltaPack(Readable.from([res.rawPayload]), {
    expected,
    maxPayloadBytes: 1 << 28,
  }))
    out.push(r);
  return out;
}

/** What the agent does with a kind-1 record: rebuild against the base content, verify every chunk. */
async function rebuild(from: BuiltTree, to: BuiltTree, record: DeltaRecord): Promise<Buffer> {
  const baseContent = await readFileContent(from.store, await fileObject(from, record.base));
  const targetFile = await fileObject(to, record.target);
  const content = decodeDelta(baseContent, record.payload, targetFile.size);
  verifyFileContent(targetFile, content);
  return content;
}

async function cacheEntries(t: TestApp): Promise<string[]> {
  const root = join(t.dataDir, 'deltas');
  const dirs = await readdir(root).catch(() => [] as string[]);
  const out: string[] = [];
  for (const dir of dirs) for (const name of await readdir(join(root, dir))) out.push(name);
  return out.sort();
}

const DICTIONARY_MAGIC = Buffer.from([0x37, 0xa4, 0x30, 0xec]);

forEachDialect((dialect) => {
  let t: TestApp;
  let v1: BuiltTree;
  let v2: BuiltTree;
  let device: string;
  const app = 'deltaweb';
  const mainV1 = text(300_000, 'main');
  const mainV2 = edited(mainV1, 150_000, 'CHANGED IN V2');
  const magicV1 = Buffer.concat([DICTIONARY_MAGIC, text(60_000, 'magic')]);
  const noiseV1 = randomBytes(1000);
  const bigV1 = text(1_500_000, 'big');
  const files1 = {
    'main.js': mainV1,
    'lib/magic.bin': magicV1,
    'noise.bin': noiseV1,
    'big.txt': bigV1,
    'same.txt': 'unchanged\n',
    'removed.txt': 'only in v1\n',
  };
  const files2 = {
    'main.js': mainV2,
    'lib/magic.bin': edited(magicV1, 30_000, 'MAGIC EDIT'),
    'noise.bin': randomBytes(1000),
    'big.txt': edited(bigV1, 700_000, 'BIG EDIT'),
    'same.txt': 'unchanged\n',
    'added.txt': 'only in v2\n',
  };
  let rel1: Release;
  let rel2: Release;

  before(async () => {
    t = await createTestApp({
      dialect,
      config: { maxDeltaFileBytes: 1024 * 1024, allowServerSideSigning: true },
    });
    v1 = await treeOf(files1);
    v2 = await treeOf(files2);
    rel1 = await publish(t, v1, app, '1.0.0');
    rel2 = await publish(t, v2, app, '2.0.0');
    // The device runs 1.0.0 and is assigned 2.0.0: it gets deltas for the pairs between them.
    const enrolled = await acceptedDevice(t);
    device = enrolled.token;
    await assignUpdate(t, enrolled, rel1, rel2);
  });
  after(() => t.close());

  const pair = async (path: string): Promise<DeltaPair> => ({
    target: await fileId(v2, path),
    base: await fileId(v1, path),
  });

  void test('a changed file comes back as a zstd delta that rebuilds it exactly, verified by chunk', async () => {
    const p = await pair('main.js');
    const computed = await metric(t, 'flotilla_deltas_computed_total');
    const [record] = await records(await requestDeltas(t, device, [p]), [p]);
    assert.ok(record);
    assert.equal(record.kind, DeltaKind.zstd);
    assert.deepEqual([record.target, record.base], [p.target, p.base]);
    assert.ok(record.payload.length < 2_000, `delta of a 10-byte edit is ${record.payload.length} bytes`);
    assert.deepEqual(await rebuild(v1, v2, record), mainV2);
    assert.equal((await metric(t, 'flotilla_deltas_computed_total')) - computed, 1);
    assert.deepEqual(await cacheEntries(t), [`${p.target}-${p.base}`]);
  });

  void test('the second request for a pair is a cache hit: nothing computed, same bytes', async () => {
    const p = await pair('main.js');
    const computed = await metric(t, 'flotilla_deltas_computed_total');
    const hits = await metric(t, 'flotilla_delta_cache_hits_total');
    const served = await metric(t, 'flotilla_delta_bytes_served_total');
    const [record] = await records(await requestDeltas(t, t.adminToken, [p]), [p]);
    assert.equal(record?.kind, DeltaKind.zstd);
    assert.deepEqual(await rebuild(v1, v2, record), mainV2);
    assert.equal(await metric(t, 'flotilla_deltas_computed_total'), computed);
    assert.equal((await metric(t, 'flotilla_delta_cache_hits_total')) - hits, 1);
    assert.equal((await metric(t, 'flotilla_delta_bytes_served_total')) - served, record.payload.length);
  });

  void test('"none" for: too large, a base with the zstd dictionary magic, not worth it, the same file', async () => {
    const big = await pair('big.txt');
    const magic = await pair('lib/magic.bin');
    const noise = await pair('noise.bin');
    const same = { target: await fileId(v2, 'same.txt'), base: await fileId(v1, 'same.txt') };
    const self = { target: big.base, base: big.base };
    const pairs = [big, magic, noise, same, self];
    const noneBefore = await metric(t, 'flotilla_deltas_served_total', { kind: 'none' });
    const got = await records(await requestDeltas(t, device, pairs), pairs);
    assert.deepEqual(
      got.map((r) => [r.target, r.base, r.kind, r.payload.length]),
      pairs.map((p) => [p.target, p.base, DeltaKind.none, 0]),
      'every record in request order, each "none"',
    );
    assert.equal((await metric(t, 'flotilla_deltas_served_total', { kind: 'none' })) - noneBefore, 5);
    // The decisions that depend on the content alone are cached; size and identity are not computed.
    const entries = await cacheEntries(t);
    assert.ok(entries.includes(`${magic.target}-${magic.base}`));
    assert.ok(entries.includes(`${noise.target}-${noise.base}`));
    assert.ok(!entries.includes(`${big.target}-${big.base}`));
  });

  void test('concurrent requests for a new pair compute it once', async () => {
    // The reverse pair (v2's file as the base) has not been asked for yet.
    const forward = await pair('main.js');
    const p = { target: forward.base, base: forward.target };
    const computed = await metric(t, 'flotilla_deltas_computed_total');
    const answers = await Promise.all(
      [device, t.adminToken, device].map(async (token) => records(await requestDeltas(t, token, [p]), [p])),
    );
    for (const [record] of answers) {
      assert.equal(record?.kind, DeltaKind.zstd);
      assert.deepEqual(await rebuild(v2, v1, record), mainV1);
    }
    assert.equal((await metric(t, 'flotilla_deltas_computed_total')) - computed, 1);
  });

  void test('a pair repeated in one request is answered once', async () => {
    const p = await pair('main.js');
    const res = await requestDeltas(t, device, [p, p]);
    const got = await records(res, [p]);
    assert.equal(got.length, 1);
  });

  void test('unknown ids: 404 listing them, nothing computed; ids that are not file objects: 400', async () => {
    const p = await pair('main.js');
    const unknown = 'ab'.repeat(32);
    const computed = await metric(t, 'flotilla_deltas_computed_total');
    const entries = await cacheEntries(t);
    const res = await requestDeltas(t, device, [p, { target: unknown, base: p.base }]);
    assert.equal(res.statusCode, 404);
    assert.equal(errorCode(res), 'FLT_OBJECT_MISSING');
    assert.deepEqual(res.json<{ error: { details: { missing: string[] } } }>().error.details.missing, [
      unknown,
    ]);
    assert.equal(await metric(t, 'flotilla_deltas_computed_total'), computed);
    assert.deepEqual(await cacheEntries(t), entries);

    const dir = await requestDeltas(t, device, [{ target: v2.root, base: p.base }]);
    assert.equal(dir.statusCode, 400);
    assert.equal(errorCode(dir), 'FLT_VALIDATION');
    assert.deepEqual(dir.json<{ error: { details: { notFiles: string[] } } }>().error.details.notFiles, [
      v2.root,
    ]);
    const chunk = (await fileObject(v2, p.target)).chunks[0]!.id;
    const raw = await requestDeltas(t, device, [{ target: p.target, base: chunk }]);
    assert.equal(raw.statusCode, 400);
    assert.equal(errorCode(raw), 'FLT_VALIDATION');
  });

  void test('malformed bodies and too many pairs: 400', async () => {
    const p = await pair('main.js');
    const tooMany = Array.from({ length: MAX_DELTA_PAIRS_PER_REQUEST + 1 }, () => p);
    for (const body of [
      tooMany,
      [],
      [{ target: p.target }],
      [{ ...p, extra: 1 }],
      [{ target: 'zz', base: p.base }],
    ]) {
      const res = await requestDeltas(t, device, body);
      assert.equal(res.statusCode, 400, JSON.stringify(body).slice(0, 80));
      assert.equal(errorCode(res), 'FLT_VALIDATION');
    }
    const notJson = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.deltas,
      headers: { ...bearer(device), 'content-type': 'application/json' },
      payload: '{"pairs": [',
    });
    assert.equal(notJson.statusCode, 400);
  });

  void test('no credentials: 401; a pending device: refused', async () => {
    const p = await pair('main.js');
    const anonymous = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.deltas,
      payload: { pairs: [p] },
    });
    assert.equal(anonymous.statusCode, 401);
    const { secret } = await createKey(t, { name: 'manual-accept' });
    const pending = await enroll(t, secret);
    assert.equal(pending.status, 'pending');
    const res = await requestDeltas(t, await deviceToken(t, pending), [p]);
    assert.equal(res.statusCode, 403);
    assert.equal(errorCode(res), 'FLT_DEVICE_PENDING');
  });

  const precompute = (from: string, to: string, token = t.adminToken) =>
    t.app.inject({
      method: 'POST',
      url: routePath(RELEASE_DELTAS_ROUTE, { app, version: to }),
      headers: bearer(token),
      payload: { from },
    });

  /** Bytes of the stored frames of `file`'s chunks that `base` lacks, as the object route serves them. */
  const framesNotIn = async (file: FileObject, base: FileObject): Promise<number> => {
    const held = new Set(base.chunks.map((c) => c.id));
    let total = 0;
    for (const id of new Set(file.chunks.map((c) => c.id))) {
      if (held.has(id)) continue;
      const res = await t.app.inject({
        method: 'GET',
        url: routePath(ObjectRoutes.object, { id }),
        headers: bearer(t.adminToken),
      });
      assert.equal(res.statusCode, 200);
      total += res.rawPayload.length;
    }
    return total;
  };

  void test('precompute between releases: files paired by path, the totals, audited; a viewer may not', async () => {
    const viewer = await precompute('1.0.0', '2.0.0', await t.tokenFor('viewer'));
    assert.equal(viewer.statusCode, 403);
    const res = await precompute('1.0.0', '2.0.0', await t.tokenFor('deployer'));
    assert.equal(res.statusCode, 200, res.body);
    const result = res.json<PrecomputeDeltasResponse>();
    // main.js, lib/magic.bin, noise.bin, big.txt differ; same.txt does not; added/removed have no pair.
    assert.equal(result.files, 4);
    assert.equal(result.deltas, 1);
    assert.deepEqual([result.app, result.from, result.to], [app, '1.0.0', '2.0.0']);
    assert.ok(result.deltaBytes < result.plainBytes, JSON.stringify(result));
    assert.ok(result.ms >= 0);
    const audit = await t.ctx.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'release.deltas.precompute')
      .execute();
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.subject_id, `${app}@2.0.0`);
    assert.equal(JSON.parse(audit[0]!.details!).files, 4);

    const unknown = await precompute('0.9.0', '2.0.0');
    assert.equal(unknown.statusCode, 404);
    const same = await precompute('2.0.0', '2.0.0');
    assert.equal(same.statusCode, 400);
  });

  void test('a deployment precomputes, in the background, from the release its devices run', async () => {
    const v3Files = { ...files2, 'main.js': edited(mainV2, 40_000, 'CHANGED IN V3') };
    const v3 = await treeOf(v3Files);
    await publish(t, v3, app, '3.0.0');
    const dev = await acceptedDevice(t);
    const deploy = (version: string) =>
      t.app.inject({
        method: 'POST',
        url: ReleaseRoutes.deploy,
        headers: bearer(t.adminToken),
        payload: { app, version, deviceId: dev.id },
      });
    assert.equal((await deploy('2.0.0')).statusCode, 200);
    const committed = await t.app.inject({
      method: 'POST',
      url: DEVICE_REPORTS_ROUTE,
      headers: bearer(dev.token),
      payload: { app, targetPath: rel2.targetPath, phase: 'committed' },
    });
    assert.equal(committed.statusCode, 204, committed.body);
    const key = `${await fileId(v3, 'main.js')}-${await fileId(v2, 'main.js')}`;
    assert.ok(!(await cacheEntries(t)).includes(key));
    assert.equal((await deploy('3.0.0')).statusCode, 200);
    const deadline = Date.now() + 20_000;
    while (!(await cacheEntries(t)).includes(key)) {
      assert.ok(Date.now() < deadline, 'the delta from 2.0.0 to 3.0.0 was not precomputed');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  void test('GC removes cache entries whose target or base object is gone; a damaged entry is recomputed', async () => {
    const p = await pair('main.js');
    const key = `${p.target}-${p.base}`;
    const path = join(t.dataDir, 'deltas', p.target.slice(0, 2), key);
    await writeFile(path, 'not a cache entry');
    const [record] = await records(await requestDeltas(t, device, [p]), [p]);
    assert.equal(record?.kind, DeltaKind.zstd);
    assert.deepEqual(await rebuild(v1, v2, record), mainV2);

    // An entry naming an object that is not stored (as after a GC round deleted it) goes.
    const orphan = `${'cd'.repeat(32)}-${p.base}`;
    await writeFile(join(t.dataDir, 'deltas', p.target.slice(0, 2), orphan), 'x');
    assert.ok((await cacheEntries(t)).includes(orphan));
    const gc = await t.app.inject({ method: 'POST', url: OBJECT_GC_ROUTE, headers: bearer(t.adminToken) });
    assert.equal(gc.statusCode, 200, gc.body);
    const entries = await cacheEntries(t);
    assert.ok(!entries.includes(orphan));
    assert.ok(entries.includes(key), 'entries of stored objects stay');
    void rel1;
  });

  void test('precompute reports the plain bytes exactly: every missing chunk frame counted once', async () => {
    // Sizes are read several at a time; a lost update there once under-counted files with many
    // new chunks, which made their deltas look "not smaller than the chunks".
    const v9 = await treeOf({ ...files2, 'big.txt': text(900_000, 'rewritten') });
    await publish(t, v9, app, '9.0.0');
    const target = await fileObject(v9, await fileId(v9, 'big.txt'));
    assert.ok(target.chunks.length > 8, `${target.chunks.length} chunks`);
    let expected = 0;
    for (const path of ['main.js', 'lib/magic.bin', 'noise.bin', 'big.txt']) {
      const file = await fileObject(v9, await fileId(v9, path));
      expected += await framesNotIn(file, await fileObject(v2, await fileId(v2, path)));
    }
    const res = await precompute('2.0.0', '9.0.0');
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json<PrecomputeDeltasResponse>().plainBytes, expected);
  });
});

void test('config: deltaLevel and maxDeltaFileBytes from file < env, defaults, bounds', () => {
  const defaults = resolveServerConfig({ env: {} });
  assert.equal(defaults.deltaLevel, DEFAULT_DELTA_LEVEL);
  assert.equal(defaults.maxDeltaFileBytes, DEFAULT_MAX_DELTA_FILE_BYTES);
  const set = resolveServerConfig({
    env: { FLOTILLA_DELTA_LEVEL: '19', FLOTILLA_MAX_DELTA_FILE_BYTES: '0' },
  });
  assert.equal(set.deltaLevel, 19);
  assert.equal(set.maxDeltaFileBytes, 0);
  for (const env of [
    { FLOTILLA_DELTA_LEVEL: '20' },
    { FLOTILLA_DELTA_LEVEL: '0' },
    { FLOTILLA_MAX_DELTA_FILE_BYTES: '-1' },
  ]) {
    assert.throws(
      () => resolveServerConfig({ env }),
      (e: unknown) =>
        isFlotillaError(e) &&
        e.code === 'FLT_CONFIG_INVALID' &&
        /FLOTILLA_(DELTA_LEVEL|MAX_DELTA)/.test(e.message),
    );
  }
});

forEachDialect((dialect) => {
  void test('the OpenAPI document lists both delta routes with their schemas', async () => {
    const t = await createTestApp({ dialect });
    try {
      const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{
        paths: Record<
          string,
          { post?: { requestBody?: unknown; responses?: Record<string, { content?: object }> } }
        >;
      }>();
      const deltas = doc.paths['/api/v1/objects/deltas']?.post;
      assert.ok(deltas?.requestBody, 'the delta route documents its body');
      assert.ok(Object.keys(deltas.responses?.['200']?.content ?? {}).includes(DELTA_PACK_CONTENT_TYPE));
      const precompute = doc.paths['/api/v1/releases/{app}/{version}/deltas']?.post;
      assert.ok(precompute?.requestBody, 'the precompute route documents its body');
      assert.ok(precompute.responses?.['200']);
    } finally {
      await t.close();
    }
  });

  void test('the server answers /healthz at once while a large delta is computed', async () => {
    const t = await createTestApp({ dialect, config: { deltaLevel: 19, allowServerSideSigning: true } });
    try {
      const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
      const base = randomBytes(12_000_000);
      const target = Buffer.from(base);
      target.fill(7, 6_000_000, 6_001_000);
      const v1 = await treeOf({ 'blob.bin': base });
      const v2 = await treeOf({ 'blob.bin': target });
      const enrolled = await acceptedDevice(t);
      await assignUpdate(t, enrolled, await publish(t, v1, 'blob', '1'), await publish(t, v2, 'blob', '2'));
      const p = { target: await fileId(v2, 'blob.bin'), base: await fileId(v1, 'blob.bin') };
      const device = enrolled.token;
      let done = false;
      const delta = fetch(`${url}${ObjectRoutes.deltas}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${device}`, 'content-type': 'application/json' },
        body: JSON.stringify({ pairs: [p] }),
      })
        .then(async (res) => Buffer.from(await res.arrayBuffer()))
        .finally(() => {
          done = true;
        });
      const latencies: number[] = [];
      while (!done) {
        const started = performance.now();
        const health = await fetch(`${url}/healthz`);
        assert.equal(health.status, 200);
        await health.arrayBuffer();
        if (!done) latencies.push(performance.now() - started);
        await new Promise((r) => setTimeout(r, 20));
      }
      const body = await delta;
      const got: DeltaRecord[] = [];
      for await (const r of readDeltaPack(Readable.from([body]), {
        expected: new Set([deltaPairKey(p.target, p.base)]),
        maxPayloadBytes: 1 << 28,
      }))
        got.push(r);
      assert.equal(got[0]?.kind, DeltaKind.zstd);
      // Behaviour, not a timing: computed on the event loop (seconds at level 19), no health check
      // could complete meanwhile but the one or two before the computation started.
      assert.ok(latencies.length >= 10, `only ${latencies.length} health checks while computing`);
    } finally {
      await t.close();
    }
  });
});
