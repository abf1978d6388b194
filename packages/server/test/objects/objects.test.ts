import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createHash } from 'node:crypto';
import { ObjectRoutes, PACK_CODEC_HEADER } from '@flotilla/protocol';
import { decodeFrame } from '@flotilla/store';
import { readPack, decompressor } from '../../src/objects/pack.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode } from '../helpers/http.js';
import {
  assign,
  encodePack,
  missingOf,
  noise,
  publish,
  pushTree,
  recordsOf,
  treeOf,
  uploadRaw,
} from './push.js';
import { Readable } from 'node:stream';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function metric(t: TestApp, name: string): Promise<number> {
  const values = (await t.ctx.metrics.getSingleMetric(name)?.get())?.values ?? [];
  return values.reduce((sum, v) => sum + v.value, 0);
}

forEachDialect((dialect) => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
  });
  after(() => t.close());

  void test('missing → upload → missing is empty; counters count what was received', async () => {
    const tree = await treeOf({ 'a.txt': 'alpha\n', 'dir/b.bin': noise(200_000), 'dir/c.txt': 'gamma' });
    const ids = tree.store.ids();
    assert.deepEqual((await missingOf(t, t.adminToken, ids)).sort(), [...ids].sort());
    const before = await metric(t, 'flotilla_objects_received_total');
    const result = await pushTree(t, tree);
    assert.equal(result.received, ids.length);
    assert.equal(result.duplicates, 0);
    assert.ok(result.bytes >= 200_000);
    assert.ok(result.wireBytes > 0);
    assert.deepEqual(await missingOf(t, t.adminToken, ids), []);
    assert.equal((await metric(t, 'flotilla_objects_received_total')) - before, ids.length);
    // Uploading the same again stores nothing new.
    const again = await uploadRaw(t, t.adminToken, await encodePack(await recordsOf(tree.store, ids)));
    assert.equal(again.json<{ duplicates: number; received: number }>().duplicates, ids.length);
    assert.equal(again.json<{ received: number }>().received, 0);
  });

  void test('every codec round-trips', async () => {
    for (const codec of ['zstd', 'br', 'gzip', 'identity'] as const) {
      const tree = await treeOf({ [`${codec}.txt`]: `content for ${codec} `.repeat(1000) });
      const result = await pushTree(t, tree, t.adminToken, codec);
      assert.equal(result.received, tree.store.ids().length, codec);
      assert.deepEqual(await missingOf(t, t.adminToken, tree.store.ids()), []);
    }
  });

  void test('a corrupted record is refused and nothing of it is stored', async () => {
    const tree = await treeOf({ 'x.txt': 'the good one', 'y.txt': 'the one that gets corrupted' });
    const records = await recordsOf(tree.store, tree.store.ids());
    const bad = records[records.length - 1]!;
    const corrupted = [
      ...records.slice(0, -1),
      { id: bad.id, bytes: Buffer.from(bad.bytes).fill(0x41, 0, 1) },
    ];
    const res = await uploadRaw(t, t.adminToken, await encodePack(corrupted));
    assert.equal(res.statusCode, 400);
    assert.equal(errorCode(res), 'FLT_PACK_INVALID');
    assert.deepEqual(await missingOf(t, t.adminToken, [bad.id]), [bad.id]);
  });

  void test('malformed packs: truncated, trailing bytes, bad codec data, unknown codec, wrong content type', async () => {
    const tree = await treeOf({ 'z.txt': 'zeta' });
    const pack = await encodePack(await recordsOf(tree.store, tree.store.ids()));
    const truncated = await uploadRaw(t, t.adminToken, pack.subarray(0, pack.length - 40));
    assert.equal(errorCode(truncated), 'FLT_PACK_INVALID');
    // Records before the cut are whole and verified, so they are kept; the cut one (the root) is not.
    assert.deepEqual(await missingOf(t, t.adminToken, [tree.root]), [tree.root]);
    const trailing = await uploadRaw(t, t.adminToken, Buffer.concat([pack, Buffer.from('x')]));
    assert.equal(errorCode(trailing), 'FLT_PACK_INVALID');
    const garbage = await uploadRaw(t, t.adminToken, Buffer.from('not zstd at all'), 'zstd');
    assert.equal(errorCode(garbage), 'FLT_PACK_INVALID');
    const unknownCodec = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.upload,
      headers: {
        ...bearer(t.adminToken),
        'content-type': 'application/vnd.flotilla.pack',
        [PACK_CODEC_HEADER]: 'lz4',
      },
      payload: pack,
    });
    assert.equal(errorCode(unknownCodec), 'FLT_BAD_REQUEST');
    const json = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.upload,
      headers: bearer(t.adminToken),
      payload: { not: 'a pack' },
    });
    assert.equal(errorCode(json), 'FLT_UNSUPPORTED_MEDIA_TYPE');
  });

  void test('a record over the upload limit is refused', async () => {
    const small = await createTestApp({ dialect, config: { maxUploadBytes: 4096 } });
    try {
      const tree = await treeOf({ 'big.bin': noise(20_000) });
      const res = await uploadRaw(
        small,
        small.adminToken,
        await encodePack(await recordsOf(tree.store, tree.store.ids())),
      );
      assert.equal(res.statusCode, 413);
      assert.equal(errorCode(res), 'FLT_LIMIT_EXCEEDED');
    } finally {
      await small.close();
    }
  });

  void test('incremental push: a tree sharing ~95% of its bytes uploads ~5%', async () => {
    const shared = noise(1_900_000);
    const first = await treeOf({ 'data.bin': shared, 'small.txt': 'v1' });
    const firstUpload = await pushTree(t, first);
    const second = await treeOf({ 'data.bin': shared, 'extra.bin': noise(100_000), 'small.txt': 'v2' });
    const secondUpload = await pushTree(t, second);
    const total = 2_000_000;
    assert.ok(firstUpload.bytes >= 1_900_000);
    // The new file (100 kB) plus metadata; chunking never needs to resend shared chunks.
    assert.ok(secondUpload.bytes >= 100_000, `${secondUpload.bytes}`);
    assert.ok(secondUpload.bytes < 0.08 * total, `uploaded ${secondUpload.bytes} of ${total}`);
  });

  void test('GET object: frame with ETag, immutable caching, Range 206 and 416, 304', async () => {
    const content = noise(5000);
    const tree = await treeOf({ 'f.bin': content });
    await pushTree(t, tree);
    const chunkId = sha256(content);
    const url = ObjectRoutes.object.replace(':id', chunkId);
    const whole = await t.app.inject({ method: 'GET', url, headers: bearer(t.adminToken) });
    assert.equal(whole.statusCode, 200);
    assert.equal(whole.headers.etag, `"${chunkId}"`);
    assert.equal(whole.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(whole.headers['accept-ranges'], 'bytes');
    assert.deepEqual(decodeFrame(whole.rawPayload), content);
    const part = await t.app.inject({
      method: 'GET',
      url,
      headers: { ...bearer(t.adminToken), range: 'bytes=10-19' },
    });
    assert.equal(part.statusCode, 206);
    assert.equal(part.headers['content-range'], `bytes 10-19/${whole.rawPayload.length}`);
    assert.deepEqual(part.rawPayload, whole.rawPayload.subarray(10, 20));
    const suffix = await t.app.inject({
      method: 'GET',
      url,
      headers: { ...bearer(t.adminToken), range: 'bytes=-5' },
    });
    assert.deepEqual(suffix.rawPayload, whole.rawPayload.subarray(-5));
    const outside = await t.app.inject({
      method: 'GET',
      url,
      headers: { ...bearer(t.adminToken), range: `bytes=${whole.rawPayload.length}-` },
    });
    assert.equal(outside.statusCode, 416);
    assert.equal(outside.headers['content-range'], `bytes */${whole.rawPayload.length}`);
    const cached = await t.app.inject({
      method: 'GET',
      url,
      headers: { ...bearer(t.adminToken), 'if-none-match': `"${chunkId}"` },
    });
    assert.equal(cached.statusCode, 304);
    const absent = await t.app.inject({
      method: 'GET',
      url: ObjectRoutes.object.replace(':id', 'a'.repeat(64)),
      headers: bearer(t.adminToken),
    });
    assert.equal(errorCode(absent), 'FLT_OBJECT_MISSING');
    const badId = await t.app.inject({
      method: 'GET',
      url: ObjectRoutes.object.replace(':id', 'NOT-A-HASH'),
      headers: bearer(t.adminToken),
    });
    assert.equal(badId.statusCode, 400);
  });

  void test('POST pack streams exactly the requested objects, verified; unknown ids are a 404 listing them', async () => {
    const tree = await treeOf({ 'p/one.txt': 'one', 'p/two.bin': noise(70_000) });
    const device = await acceptedDevice(t);
    await assign(t, await publish(t, tree, 'packs', '1'), device.id);
    const ids = tree.store.ids();
    const res = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.pack,
      headers: bearer(device.token),
      payload: { ids, codec: 'zstd' },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers[PACK_CODEC_HEADER], 'zstd');
    const decoded = Readable.from([res.rawPayload]).pipe(decompressor('zstd'));
    const got = new Map<string, Buffer>();
    for await (const r of readPack(decoded, { maxRecordBytes: 1 << 24, maxTotalBytes: 1 << 26 }))
      got.set(r.id, r.bytes);
    assert.deepEqual([...got.keys()].sort(), [...ids].sort());
    for (const id of ids) assert.deepEqual(got.get(id), Buffer.from(await tree.store.getObject(id)));

    const unknown = 'b'.repeat(64);
    const missing = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.pack,
      headers: bearer(device.token),
      payload: { ids: [ids[0], unknown] },
    });
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(missing.json<{ error: { details: { missing: string[] } } }>().error.details.missing, [
      unknown,
    ]);
  });

  void test('roles: viewers and devices cannot upload; anonymous cannot read', async () => {
    const viewer = await t.tokenFor('viewer');
    const device = await acceptedDevice(t);
    const tree = await treeOf({ 'r.txt': 'roles' });
    const pack = await encodePack(await recordsOf(tree.store, tree.store.ids()));
    assert.equal(errorCode(await uploadRaw(t, viewer, pack)), 'FLT_FORBIDDEN');
    assert.equal((await uploadRaw(t, device.token, pack)).statusCode, 401);
    const missing = await t.app.inject({
      method: 'POST',
      url: ObjectRoutes.missing,
      headers: bearer(viewer),
      payload: { ids: [] },
    });
    assert.equal(errorCode(missing), 'FLT_FORBIDDEN');
    assert.equal((await missingOf(t, t.adminToken, tree.store.ids())).length, tree.store.ids().length);
    const anon = await t.app.inject({ method: 'GET', url: ObjectRoutes.object.replace(':id', tree.root) });
    assert.equal(errorCode(anon), 'FLT_UNAUTHENTICATED');
  });
});
