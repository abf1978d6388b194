import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expiryPolicy, FsMetadataStore, loadOrCreateOnlineKeys } from '../../src/tuf/index.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-tuf-server-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

void test('the filesystem store keeps immutable versions per repository', async (t) => {
  const store = new FsMetadataStore(await tempDir(t));
  assert.equal(await store.latestVersion('image', 'root'), undefined);
  await store.put('image', 'root', 1, Buffer.from('r1'));
  await store.put('image', 'root', 2, Buffer.from('r2'));
  await store.put('director/dev-1', 'targets', 1, Buffer.from('t1'));
  await store.put('director', 'root', 1, Buffer.from('d1'));
  assert.equal(await store.latestVersion('image', 'root'), 2);
  assert.equal((await store.get('image', 'root', 1))?.toString(), 'r1');
  assert.equal(await store.get('image', 'targets', 1), undefined);
  await assert.rejects(store.put('image', 'root', 2, Buffer.from('evil')), { code: 'FLT_CONFLICT' });
  assert.equal((await store.get('image', 'root', 2))?.toString(), 'r2');
  await assert.rejects(store.put('../x', 'root', 1, Buffer.from('x')), { code: 'FLT_VALIDATION' });
  await assert.rejects(store.put('image', 'root', 0, Buffer.from('x')), { code: 'FLT_VALIDATION' });
  assert.deepEqual(await store.listRepos('director/'), ['director/dev-1']);
  await store.deleteBelow('image', 'root', 2);
  assert.equal(await store.get('image', 'root', 1), undefined);
  assert.equal((await store.get('image', 'root', 2))?.toString(), 'r2');
  assert.deepEqual(await store.listRepos(''), ['director', 'director/dev-1', 'image']);
});

void test('the filesystem store answers from memory what its own writes and one listing taught it', async (t) => {
  const dir = await tempDir(t);
  const store = new FsMetadataStore(dir, { maxCachedBytes: 64 });
  // Concurrent first uses of a repository, one of them with a write under way.
  const [first] = await Promise.all([
    store.latestVersion('director/dev-1', 'targets'),
    store.put('director/dev-1', 'targets', 1, Buffer.from('t1')),
  ]);
  assert.ok(first === undefined || first === 1);
  assert.equal(await store.latestVersion('director/dev-1', 'targets'), 1);
  for (let v = 2; v <= 5; v++) await store.put('director/dev-1', 'targets', v, Buffer.from(`t${v}`));
  assert.equal(await store.latestVersion('director/dev-1', 'targets'), 5);
  await store.deleteBelow('director/dev-1', 'targets', 4);
  assert.equal(await store.get('director/dev-1', 'targets', 3), undefined);
  assert.equal((await store.get('director/dev-1', 'targets', 4))?.toString(), 't4');
  // The bytes returned are a copy: changing them changes nothing stored.
  const bytes = await store.get('director/dev-1', 'targets', 5);
  bytes?.fill(0);
  assert.equal((await store.get('director/dev-1', 'targets', 5))?.toString(), 't5');
  // Another store on the same directory (the next start) reads the same from disk.
  const again = new FsMetadataStore(dir);
  assert.equal(await again.latestVersion('director/dev-1', 'targets'), 5);
  assert.equal(await again.get('director/dev-1', 'targets', 3), undefined);
  assert.equal((await again.get('director/dev-1', 'targets', 4))?.toString(), 't4');
  await again.deleteBelow('director/dev-1', 'targets', 10);
  assert.equal(await again.latestVersion('director/dev-1', 'targets'), undefined);
  assert.equal(await again.get('director/dev-1', 'targets', 5), undefined);
});

void test('online keys are generated once, persisted 0600 (encrypted on request) and reloaded identical', async (t) => {
  const dir = await tempDir(t);
  const [a, b] = await Promise.all([
    loadOrCreateOnlineKeys(dir, { passphrase: 'pw' }),
    loadOrCreateOnlineKeys(dir, { passphrase: 'pw' }),
  ]);
  assert.equal(a.snapshot.key.keyID, b.snapshot.key.keyID, 'concurrent starts agree on the keys');
  const again = await loadOrCreateOnlineKeys(dir, { passphrase: 'pw' });
  assert.equal(again.director.key.keyID, a.director.key.keyID);
  assert.notEqual(a.snapshot.key.keyID, a.timestamp.key.keyID);
  assert.equal((await stat(join(dir, 'timestamp.key.json'))).mode & 0o777, 0o600);
  await assert.rejects(loadOrCreateOnlineKeys(dir, { passphrase: 'wrong' }), {
    code: 'FLT_KEY_PASSPHRASE_WRONG',
  });
});

void test('an invalid expiry policy is refused listing every problem', () => {
  assert.throws(
    () => expiryPolicy({ timestampSeconds: 1, refreshRemainingFraction: 2 }),
    (e: Error & { code?: string; details?: { problems: string[] } }) => {
      assert.equal(e.code, 'FLT_CONFIG_INVALID');
      assert.equal(e.details?.problems.length, 2);
      return true;
    },
  );
});
