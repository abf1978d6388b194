import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { contentId } from '@flotilla/store';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import type { ChunkCacheOptions } from '../../src/cache/chunk-cache.js';
import { tempDir } from '../helpers/tmp.js';
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
