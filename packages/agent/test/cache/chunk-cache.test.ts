import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { RACY_MARGIN_MS, contentId, racyAfterNs, stampOf } from '@flotilla/store';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import type { ChunkCacheOptions } from '../../src/cache/chunk-cache.js';
import { tempDir } from '@flotilla/testkit';
import { buildRelease, randomFiles, stateDb, writeTree } from '../update/fixtures.js';

/** A cache in `<tmp>/data/chunks` with its state.db; `dir` is the temp dir, for release sources. */
async function openCache(t: TestContext, options: Omit<ChunkCacheOptions, 'dir' | 'db'>) {
  const dir = tempDir(t);
  const db = stateDb(t, join(dir, 'data'));
  t.after(() => db.close());
  return { dir, cache: await ChunkCache.open({ dir: join(dir, 'data/chunks'), db, ...options }) };
}

void test('LRU eviction under the cap never removes protected (current / previous release) items', async (t) => {
  const { dir, cache } = await openCache(t, { maxBytes: 150_000 });
  const current = await buildRelease(cache.store, writeTree(join(dir, 'a'), randomFiles(3, 30_000, 'a')), {
    app: 'x',
    version: '1',
  });
  const old = await buildRelease(cache.store, writeTree(join(dir, 'b'), randomFiles(3, 30_000, 'b')), {
    app: 'x',
    version: '0',
  });
  const newer = await buildRelease(cache.store, writeTree(join(dir, 'c'), randomFiles(3, 30_000, 'c')), {
    app: 'x',
    version: '2',
  });
  // Recency: `old` is read last, so plain LRU would keep it over `newer`.
  for (const id of await cache.reachable([newer.root])) await cache.getChunk(id).catch(() => undefined);
  for (const id of await cache.reachable([old.root])) await cache.getChunk(id).catch(() => undefined);
  const protectedIds = await cache.reachable([current.root]);
  const oldIds = [...(await cache.reachable([old.root]))];
  const newerIds = [...(await cache.reachable([newer.root]))];
  const result = await cache.evict(protectedIds);
  assert.ok(result.removed > 0);
  assert.ok(result.bytesKept <= 150_000);
  for (const id of protectedIds) assert.equal(await cache.has(id), true, 'protected item kept');
  const oldGone = await cache.missing(oldIds);
  const newerGone = await cache.missing(newerIds);
  assert.ok(newerGone.length > 0, 'the least recently used release went first');
  assert.ok(oldGone.length < newerGone.length);
});

void test('a cap of 0 keeps exactly the protected items', async (t) => {
  const { dir, cache } = await openCache(t, { maxBytes: 0 });
  const keep = await buildRelease(cache.store, writeTree(join(dir, 'a'), randomFiles(2, 30_000, 'a')), {
    app: 'x',
    version: '1',
  });
  await buildRelease(cache.store, writeTree(join(dir, 'b'), randomFiles(2, 30_000, 'b')), {
    app: 'x',
    version: '2',
  });
  const protectedIds = await cache.reachable([keep.root]);
  await cache.evict(protectedIds);
  const left: string[] = [];
  for await (const id of cache.store.list()) left.push(id);
  assert.deepEqual(left.sort(), [...protectedIds].sort());
});

void test('a corrupt item read from the cache is removed and reported as FLT_HASH_MISMATCH', async (t) => {
  const corrupt: string[] = [];
  const { dir, cache } = await openCache(t, { maxBytes: 1e9, onCorrupt: (id) => corrupt.push(id) });
  const release = await buildRelease(cache.store, writeTree(join(dir, 'a'), randomFiles(1, 30_000)), {
    app: 'x',
    version: '1',
  });
  const { readFileSync, writeFileSync } = await import('node:fs');
  // The largest stored item is a chunk (objects are a few hundred bytes).
  let target = '';
  let largest = 0;
  for (const id of await cache.reachable([release.root])) {
    const size = readFileSync(cache.store.pathOf(id)).length;
    if (size > largest) [target, largest] = [id, size];
  }
  const bytes = readFileSync(cache.store.pathOf(target));
  bytes[100] = (bytes[100] ?? 0) ^ 1;
  writeFileSync(cache.store.pathOf(target), bytes);
  await assert.rejects(cache.getChunk(target), { code: 'FLT_HASH_MISMATCH' });
  assert.equal(await cache.has(target), false);
  assert.deepEqual(corrupt, [target]);
});

void test('overCap: a scan the first time, then a running count of what the cache writes and evicts', async (t) => {
  const { dir, cache } = await openCache(t, { maxBytes: 100_000 });
  // Written behind the cache's back: only the first scan can know about these.
  const first = await buildRelease(cache.store, writeTree(join(dir, 'a'), randomFiles(2, 30_000, 'a')), {
    app: 'x',
    version: '1',
  });
  assert.equal(await cache.overCap(), false, '~60 KB under a 100 KB cap');
  for (const [i, bytes] of Object.values(randomFiles(2, 30_000, 'b')).entries()) {
    await cache.putChunk(contentId(bytes), bytes);
    assert.equal(await cache.overCap(), i === 1, `after ${i + 1} more chunks of 30 KB`);
  }
  await cache.evict(await cache.reachable([first.root]));
  assert.equal(await cache.overCap(), false, 'eviction brings the count under the cap');
});

void test('tree objects are kept in memory once read: a second read needs no file, a removed one is forgotten', async (t) => {
  const { dir, cache } = await openCache(t, { maxBytes: 1 << 30 });
  const release = await buildRelease(cache.store, writeTree(join(dir, 'a'), randomFiles(1, 1000, 'a')), {
    app: 'x',
    version: '1',
  });
  const bytes = await cache.getObject(release.root);
  await rm(cache.store.pathOf(release.root));
  assert.deepEqual(await cache.getObject(release.root), bytes, 'served from memory');
  await cache.remove(release.root);
  await assert.rejects(cache.getObject(release.root), { code: 'FLT_OBJECT_MISSING' });
});

/**
 * A release whose one file is kept whole (as after a delta) instead of as chunks: the file's chunks
 * are dropped from the store and the content put whole.
 */
async function wholeFileRelease(t: TestContext, maxBytes: number) {
  const { dir, cache } = await openCache(t, { maxBytes });
  const content = randomBytes(200_000);
  const release = await buildRelease(cache.store, writeTree(join(dir, 'a'), { 'bin/app': content }), {
    app: 'x',
    version: '1',
  });
  const top = await cache.getTreeObject(release.root);
  assert.equal(top.type, 'dir');
  const bin = await cache.getTreeObject(top.entries[0]!.hash!);
  assert.equal(bin.type, 'dir');
  const fileId = bin.entries[0]!.hash!;
  const file = await cache.getTreeObject(fileId);
  assert.equal(file.type, 'file');
  assert.ok(file.chunks.length > 1, 'several chunks');
  for (const c of file.chunks) await cache.store.remove(c.id);
  cache.putWholeFile(fileId, file, content);
  return { dir, cache, release, fileId, file, content };
}

void test('a whole file stands in for its chunks: read back verified, counted, evicted unless protected', async (t) => {
  const { cache, release, fileId, file, content } = await wholeFileRelease(t, 0);
  assert.equal(cache.hasWholeFile(fileId), true);
  assert.equal((await stat(cache.wholeFilePath(fileId)!)).mode & 0o7777, file.mode);
  let offset = 0;
  for (const c of file.chunks) {
    assert.deepEqual(Buffer.from(await cache.getChunk(c.id)), content.subarray(offset, offset + c.size));
    offset += c.size;
  }
  assert.equal(await cache.overCap(), true, 'its bytes count towards the cap');
  const kept = await cache.evict(await cache.reachable([release.root]));
  assert.equal(cache.hasWholeFile(fileId), true, 'protected with its release');
  assert.ok(kept.bytesKept >= content.length);
  await cache.evict(new Set());
  assert.equal(cache.hasWholeFile(fileId), false, 'evicted once unprotected');
  await assert.rejects(cache.getChunk(file.chunks[0]!.id), { code: 'FLT_OBJECT_MISSING' });
});

void test('a whole file is written with a time before the racy margin and stamped, until it is removed', async (t) => {
  const start = Date.now();
  const { cache, fileId } = await wholeFileRelease(t, 0);
  const info = await lstat(cache.wholeFilePath(fileId)!, { bigint: true });
  assert.ok(Number(info.mtimeNs / 1_000_000n) < start - RACY_MARGIN_MS, 'backdated');
  // Every field as lstat gives it (stampOf's mapping is checked field by field in the store's tests).
  assert.deepEqual([...cache.wholeFileStamps()], [stampOf(fileId, info, racyAfterNs(Date.now() + 60_000))]);
  await cache.evict(new Set());
  assert.equal(cache.hasWholeFile(fileId), false);
  assert.deepEqual([...cache.wholeFileStamps()], []);
});

void test('a whole file changed on disk: the chunk read fails FLT_HASH_MISMATCH and the file is removed', async (t) => {
  const { cache, fileId, file } = await wholeFileRelease(t, 1 << 30);
  await writeFile(cache.wholeFilePath(fileId)!, randomBytes(200_000));
  await assert.rejects(cache.getChunk(file.chunks[0]!.id), { code: 'FLT_HASH_MISMATCH' });
  assert.equal(cache.hasWholeFile(fileId), false);
  await assert.rejects(cache.getChunk(file.chunks[1]!.id), { code: 'FLT_OBJECT_MISSING' });
});

void test('whole files survive a restart; a temporary file a crash left behind is removed', async (t) => {
  const { cache, fileId, file, content } = await wholeFileRelease(t, 1 << 30);
  const leftover = join(cache.whole.dir, `${fileId}.abcdef.tmp`);
  await writeFile(leftover, 'half');
  const db = stateDb(t, join(tempDir(t), 'data'));
  t.after(() => db.close());
  const again = await ChunkCache.open({ dir: dirname(cache.whole.dir), db, maxBytes: 1 << 30 });
  assert.equal(again.hasWholeFile(fileId), true);
  await assert.rejects(stat(leftover), { code: 'ENOENT' });
  const last = file.chunks.at(-1)!;
  assert.deepEqual(Buffer.from(await again.getChunk(last.id)), content.subarray(content.length - last.size));
});

void test('garbage collections after every collectEveryBytes of chunks stored or read, every eighth a full one (an update keeps no dead buffers)', async (t) => {
  const collections: string[] = [];
  const { cache } = await openCache(t, {
    maxBytes: 1 << 30,
    collectGarbage: (type) => collections.push(type),
    collectEveryBytes: 20_000,
  });
  const chunks = Array.from({ length: 5 }, () => randomBytes(30_000));
  for (const bytes of chunks) await cache.putChunk(contentId(bytes), bytes);
  assert.deepEqual(collections, ['minor', 'minor', 'minor', 'minor', 'minor'], 'one per chunk stored');
  for (const bytes of chunks) assert.deepEqual(Buffer.from(await cache.getChunk(contentId(bytes))), bytes);
  assert.equal(collections.length, 10, 'and one per chunk read');
  assert.deepEqual(
    collections.flatMap((type, i) => (type === 'major' ? [i] : [])),
    [7],
    'every eighth is a full collection',
  );
});
