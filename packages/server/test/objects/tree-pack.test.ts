/**
 * The tree-pack route (protocol `ObjectRoutes.treePack`) over the real routes: a tree's objects
 * minus what the have roots reach, directories before what they name; unknown have roots; an
 * unknown root; hostile bodies; who may ask; the OpenAPI entry; a real streamed response. Then the
 * closure cache on its own: hits read nothing, a new release reads only what no cached closure
 * describes, the LRU stays within its bounds.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import {
  MAX_TREE_PACK_HAVE,
  ObjectRoutes,
  OperatorRoutes,
  PACK_CODEC_HEADER,
  PACK_CONTENT_TYPE,
} from '@flotilla/protocol';
import type { PackCodec, Release } from '@flotilla/protocol';
import { MemoryStore, parseObject } from '@flotilla/store';
import type { LightMyRequestResponse } from 'fastify';
import { Registry } from 'prom-client';
import { decompressor, readPack } from '../../src/objects/pack.js';
import { createTreePackMetrics } from '../../src/objects/metrics.js';
import type { ObjectStore } from '../../src/objects/store.js';
import { TreeClosures, treePackIds } from '../../src/objects/tree-closures.js';
import { acceptedDevice, createKey, deviceToken, enroll, operatorPost } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode } from '../helpers/http.js';
import { assign, assignUpdate, noise, publish, treeOf } from './push.js';
import type { BuiltTree } from './push.js';

/** Every tree object under `root` (the test's own walk), with each directory's children. */
async function closureOf(store: MemoryStore, root: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const walk = async (id: string): Promise<void> => {
    if (out.has(id)) return;
    const object = parseObject(await store.getObject(id));
    const children = object.type === 'dir' ? object.entries.flatMap((e) => (e.hash ? [e.hash] : [])) : [];
    out.set(id, children);
    for (const child of children) await walk(child);
  };
  await walk(root);
  return out;
}

async function metric(t: TestApp, name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = (await t.ctx.metrics.getSingleMetric(name)?.get())?.values ?? [];
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

async function recordsOf(res: LightMyRequestResponse, codec: PackCodec = 'zstd') {
  const decoded = Readable.from([res.rawPayload]).pipe(decompressor(codec));
  const records: { id: string; bytes: Buffer }[] = [];
  for await (const r of readPack(decoded, { maxRecordBytes: 1 << 24, maxTotalBytes: 1 << 28 }))
    records.push(r);
  return records;
}

forEachDialect((dialect) => {
  let t: TestApp;
  let device: string;
  let v1: BuiltTree;
  let v2: BuiltTree;
  let rel1: Release;
  const shared = { 'lib/deep/a/b/c.txt': 'deep', 'lib/deep/a/d.bin': noise(3000), 'lib/same.txt': 'same' };
  before(async () => {
    t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
    const enrolled = await acceptedDevice(t);
    device = enrolled.token;
    v1 = await treeOf({ ...shared, 'app/main.js': 'v1', 'app/big.bin': noise(200_000), 'x/copy.txt': 'dup' });
    v2 = await treeOf({
      ...shared,
      'app/main.js': 'v2',
      'app/big.bin': noise(200_000),
      'x/copy.txt': 'dup',
      'y/copy.txt': 'dup',
      'new/n.txt': 'new',
    });
    rel1 = await publish(t, v1, 'trees', '1');
    // The device runs v1 and is assigned v2: it may read both.
    await assignUpdate(t, enrolled, rel1, await publish(t, v2, 'trees', '2'));
  });
  after(() => t.close());

  const treePack = (body: unknown, token: string | null = device) =>
    t.app.inject({
      method: 'POST',
      url: ObjectRoutes.treePack,
      headers: token === null ? {} : bearer(token),
      payload: body as object,
    });

  void test('root minus have: exactly the tree objects v1 lacks, once each, directories first, no chunks', async () => {
    const want = await closureOf(v2.store, v2.root);
    const held = await closureOf(v1.store, v1.root);
    const expected = [...want.keys()].filter((id) => !held.has(id));
    const served = await metric(t, 'flotilla_objects_served_total', { via: 'tree-pack' });
    const res = await treePack({ root: v2.root, have: [v1.root] });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers[PACK_CODEC_HEADER], 'zstd');
    assert.match(String(res.headers['content-type']), new RegExp(PACK_CONTENT_TYPE));
    const records = await recordsOf(res);
    const ids = records.map((r) => r.id);
    assert.deepEqual([...ids].sort(), [...expected].sort());
    assert.equal(new Set(ids).size, ids.length, 'each object once (y/copy.txt is x/copy.txt)');
    for (const r of records) assert.deepEqual(r.bytes, Buffer.from(await v2.store.getObject(r.id)));
    // Directories before the objects they name: each record but the root is named by an earlier one.
    const named = new Set([v2.root]);
    for (const id of ids) {
      assert.ok(named.has(id), `${id} arrives before any directory naming it`);
      for (const child of want.get(id) ?? []) named.add(child);
    }
    assert.ok(!ids.includes(held.keys().next().value!), 'the have root itself is not sent');
    assert.equal(
      (await metric(t, 'flotilla_objects_served_total', { via: 'tree-pack' })) - served,
      expected.length,
    );

    const whole = await recordsOf(await treePack({ root: v2.root, codec: 'identity' }), 'identity');
    assert.deepEqual(whole.map((r) => r.id).sort(), [...want.keys()].sort());
    const nothing = await recordsOf(
      await treePack({ root: v2.root, have: [v2.root], codec: 'gzip' }),
      'gzip',
    );
    assert.deepEqual(nothing, []);
  });

  void test('have roots the server does not know, or that are no trees, are ignored', async () => {
    const res = await treePack({ root: v1.root, have: ['c'.repeat(64), await chunkOf(v1)] });
    assert.equal(res.statusCode, 200, res.body);
    const ids = (await recordsOf(res)).map((r) => r.id).sort();
    assert.deepEqual(ids, [...(await closureOf(v1.store, v1.root)).keys()].sort());
  });

  void test('an unknown root is a 404 listing it; a chunk as root is a 400', async () => {
    const unknown = 'd'.repeat(64);
    const res = await treePack({ root: unknown, have: [v1.root] });
    assert.equal(res.statusCode, 404);
    assert.equal(errorCode(res), 'FLT_OBJECT_MISSING');
    assert.deepEqual(res.json<{ error: { details: { missing: string[] } } }>().error.details.missing, [
      unknown,
    ]);
    const chunk = await treePack({ root: await chunkOf(v1) });
    assert.equal(chunk.statusCode, 400);
    assert.equal(errorCode(chunk), 'FLT_VALIDATION');
  });

  void test('hostile bodies are refused before anything is read', async () => {
    const id = v1.root;
    for (const body of [
      {},
      { root: id.toUpperCase() },
      { root: id.slice(1) },
      { root: `${id}0` },
      { root: 42 },
      { root: id, have: 'x' },
      { root: id, have: [id.replace(/^./, 'g')] },
      {
        root: id,
        have: Array.from({ length: MAX_TREE_PACK_HAVE + 1 }, (_, i) => i.toString(16).padStart(64, '0')),
      },
      { root: id, codec: 'lz4' },
      { root: id, extra: true },
      { root: [id] },
    ]) {
      const res = await treePack(body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(errorCode(res), 'FLT_VALIDATION', JSON.stringify(body));
    }
    const sixteen = Array.from({ length: MAX_TREE_PACK_HAVE }, (_, i) => i.toString(16).padStart(64, '0'));
    assert.equal((await treePack({ root: id, have: sixteen })).statusCode, 200);
    const huge = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.treePack,
      headers: { ...bearer(device), 'content-type': 'application/json' },
      payload: JSON.stringify({ root: id, have: [], pad: 'x'.repeat(1 << 20) }),
    });
    assert.equal(huge.statusCode, 413);
    assert.equal(errorCode(huge), 'FLT_BODY_TOO_LARGE');
    const notJson = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.treePack,
      headers: { ...bearer(device), 'content-type': 'application/json' },
      payload: '{"root": ',
    });
    assert.equal(errorCode(notJson), 'FLT_BAD_JSON');
  });

  void test('who may ask: operators and accepted devices; not anonymous, unknown, pending or revoked devices', async () => {
    const anonymous = await treePack({ root: v1.root }, null);
    assert.equal(anonymous.statusCode, 401);
    assert.equal(errorCode(anonymous), 'FLT_UNAUTHENTICATED');
    const { secret } = await createKey(t, { name: 'tree-pack-manual' });
    const pending = await enroll(t, secret);
    const refused = await treePack({ root: v1.root }, await deviceToken(t, pending));
    assert.equal(refused.statusCode, 403);
    assert.equal(errorCode(refused), 'FLT_DEVICE_PENDING');
    const bogus = await treePack({ root: v1.root }, 'flt_dt_not-a-real-token');
    assert.equal(bogus.statusCode, 401);
    assert.equal((await treePack({ root: v1.root }, await t.tokenFor('viewer'))).statusCode, 200);
    const revoked = await acceptedDevice(t);
    await assign(t, rel1, revoked.id);
    assert.equal((await treePack({ root: v1.root }, revoked.token)).statusCode, 200);
    const revoke = await operatorPost(t, OperatorRoutes.deviceRevoke, revoked.id, {});
    assert.equal(revoke.statusCode, 200, revoke.body);
    const gone = await treePack({ root: v1.root }, revoked.token);
    assert.equal(gone.statusCode, 403, gone.body);
    assert.equal(errorCode(gone), 'FLT_DEVICE_REVOKED');
  });

  void test('repeated requests hit the closure cache', async () => {
    const hits = await metric(t, 'flotilla_tree_closure_lookups_total', { result: 'hit' });
    assert.equal((await treePack({ root: v2.root, have: [v1.root] })).statusCode, 200);
    assert.equal(
      (await metric(t, 'flotilla_tree_closure_lookups_total', { result: 'hit' })) - hits,
      2,
      'root and have closures came from the cache',
    );
    assert.ok((await metric(t, 'flotilla_tree_closure_cached_objects')) > 0);
  });

  void test('the OpenAPI document lists the tree-pack route with its body and pack response', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<
        string,
        { post?: { requestBody?: unknown; responses?: Record<string, { content?: object }> } }
      >;
    }>();
    const route = doc.paths[ObjectRoutes.treePack]?.post;
    assert.ok(route?.requestBody, 'the tree-pack route documents its body');
    assert.ok(Object.keys(route.responses?.['200']?.content ?? {}).includes(PACK_CONTENT_TYPE));
  });

  void test('over a listening server the pack streams to the device', async () => {
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const res = await fetch(`${url}${ObjectRoutes.treePack}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${device}`, 'content-type': 'application/json' },
      body: JSON.stringify({ root: v2.root, have: [v1.root], codec: 'br' }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get(PACK_CODEC_HEADER), 'br');
    const records = Readable.fromWeb(res.body! as never).pipe(decompressor('br'));
    let n = 0;
    for await (const _ of readPack(records, { maxRecordBytes: 1 << 24, maxTotalBytes: 1 << 26 })) n++;
    assert.ok(n > 0);
  });
});

/** A chunk id of `tree` (some file's first chunk). */
async function chunkOf(tree: BuiltTree): Promise<string> {
  for (const id of tree.store.ids()) {
    const bytes = await tree.store.getObject(id);
    try {
      const object = parseObject(bytes);
      if (object.type === 'file' && object.chunks[0]) return object.chunks[0].id;
    } catch {
      // a chunk
    }
  }
  throw new Error('no chunk');
}

/** The closure cache on a counting store. */
function countingStore(source: MemoryStore): { store: ObjectStore; reads: string[] } {
  const reads: string[] = [];
  const store = {
    getObject: (id: string) => {
      reads.push(id);
      return source.getObject(id);
    },
  } as unknown as ObjectStore;
  return { store, reads };
}

void test('closures: a cache hit reads nothing; a new release reads only what no cached closure knows', async () => {
  const base = { 'a/1.txt': '1', 'a/2.txt': '2', 'b/c/3.txt': '3', 'b/c/d/4.txt': '4' };
  const r1 = await treeOf(base);
  const r2 = await treeOf({ ...base, 'a/2.txt': 'two' });
  const all = new MemoryStore();
  for (const tree of [r1, r2])
    for (const id of tree.store.ids()) await all.putObject(id, await tree.store.getObject(id));
  const { store, reads } = countingStore(all);
  const closures = new TreeClosures({ store, metrics: createTreePackMetrics(new Registry()) });
  const c1 = (await closures.get(r1.root))!;
  assert.equal(c1.size, (await closureOf(all, r1.root)).size);
  assert.equal(reads.length, c1.size, 'each object of r1 read once');
  reads.length = 0;
  assert.equal(await closures.get(r1.root), c1);
  assert.equal(reads.length, 0, 'a hit reads nothing');
  const c2 = (await closures.get(r2.root))!;
  const fresh = [...(await closureOf(all, r2.root)).keys()].filter((id) => !c1.has(id));
  assert.deepEqual(reads.sort(), fresh.sort(), 'only the new root, a/ and a/2.txt are read');
  assert.deepEqual(treePackIds(r2.root, c2, [c1]).sort(), fresh.sort());
  assert.equal(await closures.get('e'.repeat(64)), null);
});

void test('closures: the LRU keeps within its object and root bounds, least recently used out first', async () => {
  const trees = await Promise.all([0, 1, 2].map((i) => treeOf({ [`t${i}/f.txt`]: `file ${i}` })));
  const all = new MemoryStore();
  for (const tree of trees)
    for (const id of tree.store.ids()) await all.putObject(id, await tree.store.getObject(id));
  const { store, reads } = countingStore(all);
  const closures = new TreeClosures({ store, metrics: createTreePackMetrics(new Registry()), maxRoots: 2 });
  for (const tree of trees) await closures.get(tree.root);
  assert.deepEqual(closures.stats(), { roots: 2, objects: 6 });
  reads.length = 0;
  await closures.get(trees[2]!.root);
  await closures.get(trees[1]!.root);
  assert.equal(reads.length, 0, 'the two most recent are held');
  await closures.get(trees[0]!.root);
  assert.ok(reads.includes(trees[0]!.root), 'the evicted one is read again');
  const small = new TreeClosures({ store, metrics: createTreePackMetrics(new Registry()), maxObjects: 4 });
  for (const tree of trees) await small.get(tree.root);
  assert.deepEqual(small.stats(), { roots: 1, objects: 3 });
});
