/**
 * What a device may read (issue 13, items 1, 5 and 6), over the real routes: objects, packs, tree
 * packs and deltas only of the releases assigned to it (desired, current, and the previous one it may
 * roll back to), answered as if anything else were not stored; delta work only for the file pairs of
 * its own update, a size cap on the delta cache, no caching of deltas that save little; and director
 * repositories only for devices that exist. Operators keep reading everything.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { DEVICE_REPORTS_ROUTE, ObjectRoutes, ReleaseRoutes, isFlotillaError } from '@flotilla/protocol';
import type { DeltaPair, Release } from '@flotilla/protocol';
import { DeltaKind, deltaPairKey, parseFileObject, readDeltaPack, walkTree } from '@flotilla/store';
import type { DeltaRecord } from '@flotilla/store';
import type { LightMyRequestResponse } from 'fastify';
import { acceptedDevice } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode } from '../helpers/http.js';
import { resolveServerConfig } from '../../src/config.js';
import { IdSet } from '../../src/objects/access.js';
import { SqliteMetadataStore } from '../../src/tuf/index.js';
import { publish, treeOf } from './push.js';
import type { BuiltTree } from './push.js';

async function fileId(tree: BuiltTree, path: string): Promise<string> {
  for await (const { path: p, entry } of walkTree(tree.store, tree.root))
    if (p === path && entry.kind === 'file') return entry.hash!;
  throw new Error(`no file ${path}`);
}

async function chunkOf(tree: BuiltTree, path: string): Promise<string> {
  const id = await fileId(tree, path);
  return parseFileObject(await tree.store.getObject(id), { expectedId: id }).chunks[0]!.id;
}

function getObject(t: TestApp, token: string, id: string) {
  return t.app.inject({ method: 'GET', url: ObjectRoutes.object.replace(':id', id), headers: bearer(token) });
}

function pack(t: TestApp, token: string, ids: string[]) {
  return t.app.inject({
    method: 'POST',
    url: ObjectRoutes.pack,
    headers: bearer(token),
    payload: { ids, codec: 'identity' },
  });
}

function treePack(t: TestApp, token: string, root: string, have: string[] = []) {
  return t.app.inject({
    method: 'POST',
    url: ObjectRoutes.treePack,
    headers: bearer(token),
    payload: { root, have, codec: 'identity' },
  });
}

function deltas(t: TestApp, token: string, pairs: DeltaPair[]) {
  return t.app.inject({
    method: 'POST',
    url: ObjectRoutes.deltas,
    headers: bearer(token),
    payload: { pairs },
  });
}

async function deltaRecords(res: LightMyRequestResponse, pairs: DeltaPair[]): Promise<DeltaRecord[]> {
  assert.equal(res.statusCode, 200, res.body);
  const out: DeltaRecord[] = [];
  const expected = new Set(pairs.map((p) => deltaPairKey(p.target, p.base)));
  for await (const r of readDeltaPack(Readable.from([res.rawPayload]), {
    expected,
    maxPayloadBytes: 1 << 28,
  }))
    out.push(r);
  return out;
}

function assertMissing(res: LightMyRequestResponse, ids: string[]): void {
  assert.equal(res.statusCode, 404, res.body);
  assert.equal(errorCode(res), 'FLT_OBJECT_MISSING');
  const missing = res.json<{ error: { details?: { missing?: string[] } } }>().error.details?.missing ?? [];
  assert.deepEqual([...missing].sort(), [...ids].sort());
}

async function deploy(t: TestApp, release: Release, deviceId: string): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: ReleaseRoutes.deploy,
    headers: bearer(t.adminToken),
    payload: { app: release.app, version: release.version, deviceId },
  });
  assert.equal(res.statusCode, 200, res.body);
}

async function committed(t: TestApp, token: string, release: Release): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: DEVICE_REPORTS_ROUTE,
    headers: bearer(token),
    payload: { app: release.app, targetPath: release.targetPath, phase: 'committed' },
  });
  assert.ok(res.statusCode < 300, res.body);
}

/** Bytes and entries of the delta cache on disk. */
async function cacheOnDisk(t: TestApp): Promise<{ entries: number; bytes: number }> {
  const root = join(t.dataDir, 'deltas');
  let entries = 0;
  let bytes = 0;
  for (const dir of await readdir(root).catch(() => [] as string[]))
    for (const name of await readdir(join(root, dir))) {
      entries += 1;
      bytes += (await stat(join(root, dir, name))).size;
    }
  return { entries, bytes };
}

/** Text that compresses like source code, different per seed. */
function text(bytes: number, seed: string): Buffer {
  const out: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `${seed} line ${i} ${randomBytes(6).toString('hex')}\n`;
    out.push(line);
    size += line.length;
  }
  return Buffer.from(out.join('')).subarray(0, bytes);
}

function edited(content: Buffer, at: number, insert: string): Buffer {
  return Buffer.concat([content.subarray(0, at), Buffer.from(insert), content.subarray(at + insert.length)]);
}

forEachDialect((dialect) => {
  let t: TestApp;
  let v1: BuiltTree;
  let v2: BuiltTree;
  let v3: BuiltTree;
  let hidden: BuiltTree;
  let rel1: Release;
  let rel2: Release;
  let rel3: Release;
  let device: { id: string; token: string };
  let bystander: { id: string; token: string };
  const main1 = text(200_000, 'main');
  const main2 = edited(main1, 100_000, 'CHANGED IN V2');
  const main3 = edited(main2, 50_000, 'CHANGED IN V3');
  const other1 = text(200_000, 'other');

  before(async () => {
    t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
    v1 = await treeOf({ 'main.js': main1, 'other.js': other1, 'noise.bin': randomBytes(300_000) });
    v2 = await treeOf({
      'main.js': main2,
      'other.js': edited(other1, 10, 'OTHER V2'),
      'noise.bin': randomBytes(300_000),
    });
    v3 = await treeOf({ 'main.js': main3, 'other.js': other1, 'noise.bin': randomBytes(300_000) });
    hidden = await treeOf({ 'secret/app.js': text(50_000, 'secret'), 'key.pem': 'PRIVATE' });
    rel1 = await publish(t, v1, 'web', '1');
    rel2 = await publish(t, v2, 'web', '2');
    rel3 = await publish(t, v3, 'web', '3');
    await publish(t, hidden, 'hidden', '1'); // signed, in the image repository's targets, deployed to nobody
    device = await acceptedDevice(t);
    bystander = await acceptedDevice(t);
    await deploy(t, rel1, device.id);
  });
  after(() => t.close());

  void test('item 1: a device reads the objects of its assigned release, and nothing of a release assigned to nobody', async () => {
    const secretFile = await fileId(hidden, 'secret/app.js');
    const secretChunk = await chunkOf(hidden, 'secret/app.js');
    const ownChunk = await chunkOf(v1, 'main.js');

    assert.equal((await getObject(t, device.token, ownChunk)).statusCode, 200);
    assert.equal((await getObject(t, device.token, v1.root)).statusCode, 200);
    // Answered as if the object were not stored: ids cannot be probed.
    for (const id of [hidden.root, secretFile, secretChunk]) {
      const res = await getObject(t, device.token, id);
      assert.equal(res.statusCode, 404, res.body);
      assert.equal(errorCode(res), 'FLT_OBJECT_MISSING');
    }
    assertMissing(await pack(t, device.token, [ownChunk, secretFile, secretChunk]), [
      secretFile,
      secretChunk,
    ]);
    assert.equal((await pack(t, device.token, [ownChunk, v1.root])).statusCode, 200);
    assertMissing(await treePack(t, device.token, hidden.root), [hidden.root]);
    assert.equal((await treePack(t, device.token, v1.root)).statusCode, 200);
    // A device with nothing assigned reads nothing.
    assertMissing(await pack(t, bystander.token, [ownChunk]), [ownChunk]);
    // Operators of any role read everything, as before.
    const viewer = await t.tokenFor('viewer');
    assert.equal((await getObject(t, viewer, secretChunk)).statusCode, 200);
    assert.equal((await pack(t, viewer, [secretFile, secretChunk])).statusCode, 200);
    assert.equal((await treePack(t, viewer, hidden.root)).statusCode, 200);
  });

  void test('item 1: desired, current and the previous release stay readable; older ones do not', async () => {
    const chunk = (tree: BuiltTree) => chunkOf(tree, 'noise.bin');
    const [c1, c2, c3] = [await chunk(v1), await chunk(v2), await chunk(v3)];
    assert.equal((await getObject(t, device.token, c2)).statusCode, 404);
    await committed(t, device.token, rel1);
    await deploy(t, rel2, device.id); // current 1, desired 2
    assert.equal((await getObject(t, device.token, c1)).statusCode, 200);
    assert.equal((await getObject(t, device.token, c2)).statusCode, 200);
    assert.equal((await getObject(t, device.token, c3)).statusCode, 404);
    await committed(t, device.token, rel2); // current 2, previous 1: it may roll back to 1
    assert.equal((await getObject(t, device.token, c1)).statusCode, 200);
    await deploy(t, rel3, device.id);
    await committed(t, device.token, rel3); // current 3, previous 2
    assert.equal((await getObject(t, device.token, c3)).statusCode, 200);
    assert.equal((await getObject(t, device.token, c2)).statusCode, 200);
    assert.equal((await getObject(t, device.token, c1)).statusCode, 404);
    assertMissing(await treePack(t, device.token, v1.root), [v1.root]);
    // A have root it may not read only means more is sent.
    assert.equal((await treePack(t, device.token, v3.root, [v1.root, hidden.root])).statusCode, 200);
  });

  void test('item 1 and 5: deltas only between files the device may read, computed only for its own update', async () => {
    // The device now runs 3 with 2 as previous (test above); files paired by path between them.
    const own = { target: await fileId(v3, 'main.js'), base: await fileId(v2, 'main.js') };
    const [record] = await deltaRecords(await deltas(t, device.token, [own]), [own]);
    assert.equal(record!.kind, DeltaKind.zstd);
    // A file of a release assigned to nobody: as if it were not stored, and nothing computed.
    const secretFile = await fileId(hidden, 'secret/app.js');
    assertMissing(await deltas(t, device.token, [{ target: secretFile, base: own.base }]), [secretFile]);
    // Files it may read but not paired by path in its update: "none", never computed or cached.
    const unrelated: DeltaPair[] = [
      { target: await fileId(v3, 'noise.bin'), base: await fileId(v2, 'main.js') },
      { target: await fileId(v3, 'main.js'), base: await fileId(v2, 'noise.bin') },
      { target: await fileId(v2, 'other.js'), base: await fileId(v3, 'main.js') },
    ];
    const got = await deltaRecords(await deltas(t, device.token, unrelated), unrelated);
    assert.deepEqual(
      got.map((r) => r.kind),
      unrelated.map(() => DeltaKind.none),
    );
    const cached = (p: DeltaPair) =>
      existsSync(join(t.dataDir, 'deltas', p.target.slice(0, 2), `${p.target}-${p.base}`));
    assert.ok(cached(own));
    for (const p of [...unrelated, { target: secretFile, base: own.base }])
      assert.ok(!cached(p), 'not cached');
    // Operators may still ask for any pair (the precompute and bench paths).
    const [operator] = await deltaRecords(await deltas(t, t.adminToken, [unrelated[2]!]), [unrelated[2]!]);
    assert.ok(operator);
  });

  void test('item 6: reading the director of a device that does not exist creates nothing', async () => {
    const viewer = await t.tokenFor('viewer');
    for (const file of ['timestamp.json', '1.targets.json']) {
      const res = await t.app.inject({
        method: 'GET',
        url: `/tuf/director/dev_made-up-${file.length}/${file}`,
        headers: bearer(viewer),
      });
      assert.equal(res.statusCode, 404, res.body);
      assert.equal(errorCode(res), 'FLT_DEVICE_NOT_FOUND');
    }
    const repos = await SqliteMetadataStore.open(join(t.dataDir, 'tuf', 'director.sqlite')).listRepos(
      'director/',
    );
    assert.ok(!repos.some((r) => r.startsWith('director/dev_made-up')), repos.join(', '));
    // An existing device's director is still created on first read (viewer or the device itself).
    const res = await t.app.inject({
      method: 'GET',
      url: `/tuf/director/${bystander.id}/timestamp.json`,
      headers: bearer(viewer),
    });
    assert.equal(res.statusCode, 200, res.body);
  });
});

forEachDialect((dialect) => {
  let t: TestApp;
  let small: TestApp;

  before(async () => {
    t = await createTestApp({ dialect, config: { deltaCacheMinSavingPercent: 99 } });
    small = await createTestApp({ dialect, config: { deltaCacheMaxBytes: 4 * 1024 } });
  });
  after(async () => {
    await t.close();
    await small.close();
  });

  const pairOf = async (target: TestApp, files: [Buffer, Buffer], version: string) => {
    const a = await treeOf({ 'f.txt': files[0] });
    const b = await treeOf({ 'f.txt': files[1] });
    await publish(target, a, `app${version}`, 'a');
    await publish(target, b, `app${version}`, 'b');
    return { target: await fileId(b, 'f.txt'), base: await fileId(a, 'f.txt') };
  };

  void test('item 5: a delta that saves less than the minimum is served but not cached', async () => {
    // One chunk each; a third of the target is new random data: the delta saves about half of the
    // chunk's stored bytes, less than 99 %.
    const base = text(12_000, 'saving');
    const target = Buffer.concat([base.subarray(0, 4000), randomBytes(4000), base.subarray(8000)]);
    const p = await pairOf(t, [base, target], '1');
    const first = await deltaRecords(await deltas(t, t.adminToken, [p]), [p]);
    assert.equal(first[0]!.kind, DeltaKind.zstd);
    assert.equal((await cacheOnDisk(t)).entries, 0);
    const again = await deltaRecords(await deltas(t, t.adminToken, [p]), [p]);
    assert.deepEqual(again[0]!.payload, first[0]!.payload);
  });

  void test('item 5: the delta cache stays within its size cap, least recently used evicted', async () => {
    const served: DeltaRecord[] = [];
    for (let i = 0; i < 6; i++) {
      // Each delta is about 1 KB (the new random part), far below the changed chunk's stored bytes.
      const base = text(200_000, `cap${i}`);
      const target = edited(base, 1000, randomBytes(1000).toString('hex'));
      const p = await pairOf(small, [base, target], `${i}`);
      const [record] = await deltaRecords(await deltas(small, small.adminToken, [p]), [p]);
      assert.equal(record!.kind, DeltaKind.zstd);
      served.push(record!);
      const onDisk = await cacheOnDisk(small);
      assert.ok(onDisk.bytes <= 4 * 1024, `cache holds ${onDisk.bytes} bytes`);
    }
    const onDisk = await cacheOnDisk(small);
    assert.ok(onDisk.entries >= 1 && onDisk.entries < 6, `${onDisk.entries} entries`);
  });
});

void test('config: deltaCacheMaxBytes and deltaCacheMinSavingPercent from env, defaults, bounds', () => {
  const defaults = resolveServerConfig({ env: {} });
  assert.equal(defaults.deltaCacheMaxBytes, 2 * 1024 ** 3);
  assert.equal(defaults.deltaCacheMinSavingPercent, 10);
  const set = resolveServerConfig({
    env: { FLOTILLA_DELTA_CACHE_MAX_BYTES: '0', FLOTILLA_DELTA_CACHE_MIN_SAVING_PERCENT: '50' },
  });
  assert.equal(set.deltaCacheMaxBytes, 0);
  assert.equal(set.deltaCacheMinSavingPercent, 50);
  for (const env of [
    { FLOTILLA_DELTA_CACHE_MAX_BYTES: '-1' },
    { FLOTILLA_DELTA_CACHE_MIN_SAVING_PERCENT: '101' },
    { FLOTILLA_DELTA_CACHE_MIN_SAVING_PERCENT: 'ten' },
  ])
    assert.throws(
      () => resolveServerConfig({ env }),
      (e: unknown) =>
        isFlotillaError(e) && e.code === 'FLT_CONFIG_INVALID' && /FLOTILLA_DELTA_CACHE/.test(e.message),
    );
});

void test('IdSet: exact membership of 64-digit hex ids, near misses and other strings refused', () => {
  const ids = Array.from({ length: 2000 }, () => randomBytes(32).toString('hex'));
  const set = IdSet.of([...ids, ...ids.slice(0, 10)]);
  assert.equal(set.size, 2000);
  for (const id of ids) assert.ok(set.has(id));
  for (const id of ids.slice(0, 200)) {
    const last = id.at(-1) === '0' ? '1' : '0';
    assert.ok(!set.has(`${id.slice(0, 63)}${last}`), 'differs in the last digit');
    assert.ok(!set.has(`${id[0] === '0' ? '1' : '0'}${id.slice(1)}`), 'differs in the first digit');
    assert.ok(!set.has(id.toUpperCase()) || id.toUpperCase() === id);
  }
  for (const bad of ['', 'a'.repeat(63), `${ids[0]!.slice(0, 63)}g`, `${ids[0]}0`, ids[0]!.replace(/./, 'z')])
    assert.ok(!set.has(bad), bad);
  assert.ok(!IdSet.of([]).has(ids[0]!));
});
