/**
 * The delta cache on its own: entries kept in memory within their budget (answered without a file
 * read), a damaged file found once the memory no longer holds its entry, and prune dropping the
 * memory copies of entries whose objects are gone.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DeltaKind } from '@flotilla/store';
import pino from 'pino';
import { DeltaCache } from '../../src/deltas/delta-cache.js';
import type { CachedDelta } from '../../src/deltas/delta-cache.js';

const log = pino({ level: 'silent' });
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flt-delta-cache-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const id = (c: string) => c.repeat(64);
const zstd = (bytes: number, fill: number): CachedDelta => ({
  kind: DeltaKind.zstd,
  payload: Buffer.alloc(bytes, fill),
});

async function damage(cache: DeltaCache, target: string, base: string): Promise<void> {
  await writeFile(cache.pathOf(target, base), 'not a cache entry');
}

void test('an entry read or written is answered from memory; a fresh cache finds the damaged file', async () => {
  const root = join(dir, 'memory');
  const cache = new DeltaCache(root, log);
  const entry = zstd(1000, 1);
  await cache.put(id('a'), id('b'), entry);
  await damage(cache, id('a'), id('b'));
  assert.equal(await cache.get(id('a'), id('b')), entry, 'the same buffer, no read');

  const fresh = new DeltaCache(root, log);
  assert.equal(await fresh.get(id('a'), id('b')), undefined);
  assert.deepEqual(await readdir(join(root, 'aa')), [], 'the damaged file is removed');

  await fresh.put(id('a'), id('b'), entry);
  const again = new DeltaCache(root, log);
  const read = await again.get(id('a'), id('b'));
  assert.deepEqual(read, entry);
  await damage(again, id('a'), id('b'));
  assert.equal(await again.get(id('a'), id('b')), read, 'kept once read from disk');
});

void test('memory holds entries within its budget, least recently used out first; large ones not at all', async () => {
  const root = join(dir, 'budget');
  const cache = new DeltaCache(root, log, 16 * 1024); // 9 entries of 1,500 bytes
  await cache.put(id('1'), id('b'), zstd(1500, 1));
  await cache.put(id('2'), id('b'), zstd(1500, 2));
  await cache.put(id('3'), id('b'), zstd(3000, 3)); // over an eighth of the budget
  assert.ok(await cache.get(id('1'), id('b'))); // 1 is now more recent than 2
  for (const c of '456789ac') await cache.put(id(c), id('b'), zstd(1500, parseInt(c, 16)));
  for (const c of ['2', '3']) await damage(cache, id(c), id('b'));
  await damage(cache, id('c'), id('b'));
  assert.equal(await cache.get(id('2'), id('b')), undefined, 'evicted: read from disk, damaged');
  assert.equal(await cache.get(id('3'), id('b')), undefined, 'too large to keep');
  assert.equal((await cache.get(id('c'), id('b')))?.payload[0], 12, 'the most recent is kept');
  assert.equal((await cache.get(id('1'), id('b')))?.payload[0], 1);
});

void test('prune drops the memory copies of entries whose target or base is gone', async () => {
  const root = join(dir, 'prune');
  const cache = new DeltaCache(root, log);
  await cache.put(id('c'), id('d'), zstd(100, 1));
  await cache.put(id('e'), id('f'), { kind: DeltaKind.none, payload: Buffer.alloc(0) });
  await cache.put(id('e'), id('d'), zstd(100, 2));
  const result = await cache.prune(new Set([id('d')]), (x) => Promise.resolve(x !== id('f')));
  assert.deepEqual(result, { removed: 3, kept: 0 });
  assert.equal(await cache.get(id('c'), id('d')), undefined);
  assert.equal(await cache.get(id('e'), id('f')), undefined);
  assert.equal(await cache.get(id('e'), id('d')), undefined);
});

void test('the files stay within the byte cap across restarts, least recently used deleted first', async () => {
  const root = join(dir, 'cap');
  const entryBytes = 37 + 1000; // header + payload
  const first = new DeltaCache(root, log, 0, 3 * entryBytes);
  for (const c of '123') await first.put(id(c), id('b'), zstd(1000, 1));
  assert.deepEqual(first.diskUsage(), { entries: 3, bytes: 3 * entryBytes });

  // A new process learns what is on disk at its first write; a read makes an entry recent.
  const second = new DeltaCache(root, log, 0, 3 * entryBytes);
  assert.ok(await second.get(id('1'), id('b')));
  await second.put(id('4'), id('b'), zstd(1000, 4));
  assert.deepEqual(second.diskUsage(), { entries: 3, bytes: 3 * entryBytes });
  assert.ok(await second.get(id('1'), id('b')), 'read before the write: kept');
  await second.put(id('5'), id('b'), zstd(1000, 5));
  const left = async (c: string) => (await new DeltaCache(root, log, 0).get(id(c), id('b'))) !== undefined;
  assert.deepEqual(
    await Promise.all(['1', '2', '3', '4', '5'].map(left)),
    [true, false, false, true, true],
    'the two used least recently went',
  );

  // Kept in memory only: nothing written.
  await second.put(id('6'), id('b'), zstd(1000, 6), { onDisk: false });
  assert.equal(await left('6'), false);
  assert.deepEqual(second.diskUsage(), { entries: 3, bytes: 3 * entryBytes });
});
