/**
 * The devices' director metadata in SQLite (tuf/director.sqlite): the store's contract, the group
 * commit (a put resolves only after an fdatasync of the WAL that started after its write, shared by
 * concurrent puts), and the move of metadata files written by earlier versions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore } from '../../src/tuf/index.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-tuf-sqlite-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

void test('the SQLite store keeps immutable versions per device repository', async (t) => {
  const dir = await tempDir(t);
  const store = new SqliteMetadataStore(join(dir, 'director.sqlite'));
  const repo = 'director/dev-1';
  assert.equal(await store.latestVersion(repo, 'targets'), undefined);
  await store.put(repo, 'targets', 1, Buffer.from('t1'));
  await store.put(repo, 'targets', 2, Buffer.from('t2'));
  await store.put('director/dev-2', 'timestamp', 1, Buffer.from('ts'));
  assert.equal(await store.latestVersion(repo, 'targets'), 2);
  assert.equal((await store.get(repo, 'targets', 1))?.toString(), 't1');
  assert.equal(await store.get(repo, 'snapshot', 1), undefined);
  await assert.rejects(store.put(repo, 'targets', 2, Buffer.from('evil')), { code: 'FLT_CONFLICT' });
  assert.equal((await store.get(repo, 'targets', 2))?.toString(), 't2');
  await assert.rejects(store.put('image', 'root', 1, Buffer.from('x')), { code: 'FLT_VALIDATION' });
  await assert.rejects(store.put('director/../x', 'root', 1, Buffer.from('x')), {
    code: 'FLT_VALIDATION',
  });
  await store.deleteBelow(repo, 'targets', 2);
  assert.equal(await store.get(repo, 'targets', 1), undefined);
  assert.equal(await store.latestVersion(repo, 'targets'), 2);
  assert.deepEqual(await store.listRepos('director/'), ['director/dev-1', 'director/dev-2']);
  for (const file of ['director.sqlite', 'director.sqlite-wal'])
    assert.equal((await stat(join(dir, file))).mode & 0o077, 0, `${file} is private`);
});

void test('a timestamp put resolves after an fdatasync that started after its write, shared by concurrent puts', async (t) => {
  const dir = await tempDir(t);
  const pending: (() => void)[] = [];
  const store = new SqliteMetadataStore(join(dir, 'director.sqlite'), {
    sync: (_fd, done) => pending.push(() => done(null)),
  });
  const resolved: string[] = [];
  const put = (name: string, version: number) =>
    store.put(`director/${name}`, 'timestamp', version, Buffer.from(name)).then(() => resolved.push(name));
  const a = put('a', 1);
  const b = put('b', 1);
  await new Promise((r) => setImmediate(r));
  assert.equal(pending.length, 1, 'one fdatasync for both writes');
  assert.deepEqual(resolved, [], 'nothing resolves before the sync');
  // Written while that sync is under way: it waits for the next one, which all later writes share.
  const c = put('c', 1);
  const d = put('d', 1);
  await new Promise((r) => setImmediate(r));
  assert.equal(pending.length, 1, 'the next sync starts only after the one under way');
  pending.shift()!();
  await Promise.all([a, b]);
  assert.deepEqual(resolved.sort(), ['a', 'b']);
  await new Promise((r) => setImmediate(r));
  assert.equal(pending.length, 1, 'one more fdatasync for the writes made meanwhile');
  assert.deepEqual(resolved.sort(), ['a', 'b']);
  pending.shift()!();
  await Promise.all([c, d]);
  assert.deepEqual(resolved.sort(), ['a', 'b', 'c', 'd']);
});

void test('a failed fdatasync fails the puts waiting for it with FLT_IO; the next puts sync again', async (t) => {
  const dir = await tempDir(t);
  let fail = true;
  const store = new SqliteMetadataStore(join(dir, 'director.sqlite'), {
    sync: (_fd, done) =>
      setImmediate(() => done(fail ? Object.assign(new Error('EIO'), { code: 'EIO' }) : null)),
  });
  await assert.rejects(store.put('director/a', 'timestamp', 1, Buffer.from('a')), { code: 'FLT_IO' });
  fail = false;
  await store.put('director/a', 'timestamp', 2, Buffer.from('a'));
});

void test('targets and snapshot wait for no fdatasync of their own: the timestamp naming them does', async (t) => {
  const dir = await tempDir(t);
  let syncs = 0;
  const store = new SqliteMetadataStore(join(dir, 'director.sqlite'), {
    sync: (_fd, done) => {
      syncs++;
      setImmediate(() => done(null));
    },
  });
  await store.put('director/a', 'targets', 1, Buffer.from('t'));
  await store.put('director/a', 'snapshot', 1, Buffer.from('s'));
  assert.equal(syncs, 0);
  await store.put('director/a', 'timestamp', 1, Buffer.from('ts'));
  assert.equal(syncs, 1);
});

void test('director metadata files of earlier versions are moved into the store once', async (t) => {
  const dir = await tempDir(t);
  const device = join(dir, 'director', 'dev-1');
  await mkdir(device, { recursive: true });
  await writeFile(join(device, '3.targets.json'), 't3');
  await writeFile(join(device, '4.snapshot.json'), 's4');
  await writeFile(join(device, '7.timestamp.json'), 'ts7');
  await writeFile(join(dir, 'director', '1.root.json'), 'root'); // the director's root stays a file
  const store = new SqliteMetadataStore(join(dir, 'director.sqlite'));
  assert.equal(await store.importFrom(dir), 1);
  assert.equal(await store.latestVersion('director/dev-1', 'targets'), 3);
  assert.equal((await store.get('director/dev-1', 'timestamp', 7))?.toString(), 'ts7');
  assert.deepEqual(await readdir(join(dir, 'director')), ['1.root.json']);
  assert.equal(await store.importFrom(dir), 0, 'nothing left to move');
  // Moved again after a crash between the insert and the removal: versions already there are kept.
  await mkdir(device);
  await writeFile(join(device, '3.targets.json'), 'other');
  assert.equal(await store.importFrom(dir), 1);
  assert.equal((await store.get('director/dev-1', 'targets', 3))?.toString(), 't3');
});

void test('a closed store lets go of its file; the next open of the path opens it again', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'director.sqlite');
  const store = SqliteMetadataStore.open(path);
  assert.equal(SqliteMetadataStore.open(path), store, 'one instance per path');
  await store.put('director/a', 'timestamp', 1, Buffer.from('ts'));
  await store.close();
  await assert.rejects(store.get('director/a', 'timestamp', 1), { code: 'FLT_IO' });
  const again = SqliteMetadataStore.open(path);
  assert.notEqual(again, store);
  assert.equal((await again.get('director/a', 'timestamp', 1))?.toString(), 'ts');
  await again.close();
});
