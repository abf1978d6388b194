/**
 * Deltas on the agent: a changed file comes as a zstd delta against the installed release (far
 * fewer bytes than its chunks), rebuilt and verified chunk by chunk; a delta that is refused,
 * garbage, or rebuilds other content is dropped and the chunks are fetched instead, so the update
 * still converges to exactly the signed tree.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { verifyTree } from '@flotilla/store';
import { tempDir } from '@flotilla/testkit';
import { harness } from './engine-harness.js';
import type { Harness } from './engine-harness.js';
import { buildRelease, serverStore, writeTree } from './fixtures.js';
import type { ObjectServer } from './object-server.js';

/** v1: a 600 KB file of random bytes and a small one; v2: the big one with three 200-byte edits, plus a new file. */
async function twoReleases(t: TestContext) {
  const store = await serverStore(t);
  const base = tempDir(t);
  const big = randomBytes(600_000);
  const bigger = Buffer.from(big);
  // Three edits 200 KB apart land in three different chunks (at least 16 KiB each, 256 KiB at most).
  for (const at of [100_000, 300_000, 500_000]) randomBytes(200).copy(bigger, at);
  const config = { files: {} };
  const v1 = await buildRelease(
    store,
    writeTree(join(base, 'v1'), { 'bin/app': big, 'etc/version': 'one\n' }),
    { app: 'svc', version: '1', config },
  );
  const v2 = await buildRelease(
    store,
    writeTree(join(base, 'v2'), { 'bin/app': bigger, 'etc/version': 'two\n', 'etc/new': 'fresh\n' }),
    { app: 'svc', version: '2', config },
  );
  return { store, v1, v2 };
}

async function update(t: TestContext, deltas: ObjectServer['deltas'], deltaThreads?: number) {
  const { store, v1, v2 } = await twoReleases(t);
  const h = await harness(t, store, { deltaThreads });
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  h.server.deltas = deltas;
  const before = h.server.bytesSent;
  const packedBefore = h.server.packIds.length;
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  await assertRuns(h, v2.root);
  return {
    h,
    store,
    v2,
    wire: h.server.bytesSent - before,
    packIds: h.server.packIds.slice(packedBefore),
  };
}

async function assertRuns(h: Harness, root: string) {
  assert.equal(h.engine.records.installed('svc').current?.root, root);
  const dir = realpathSync(join(h.dataDir, 'apps/svc/current'));
  const result = await verifyTree(h.engine.cache, dir, root);
  assert.ok(result.ok, JSON.stringify(result.problems));
}

for (const deltaThreads of [undefined, 0]) {
  const where = deltaThreads === 0 ? 'rebuilt on the main thread' : 'rebuilt on a worker thread';
  void test(`a changed file comes as a delta against the installed release (${where}): a few KB instead of its changed chunks`, async (t) => {
    const { h, v2, wire } = await update(t, 'ok', deltaThreads);
    // Pairs by path: bin/app and etc/version changed; etc/new has no base and comes in a pack.
    assert.deepEqual(h.server.deltaPairs.length, 2);
    // The changed chunks of bin/app alone are over 48 KB of random bytes; the delta is about 700 bytes.
    assert.ok(wire < 20_000, `fetched ${wire} bytes`);
    const committed = h.reports.find((r) => r.phase === 'committed' && r.targetPath === v2.targetPath);
    assert.ok(committed);
  });
}

void test('without deltas (an older server), the same update fetches the changed chunks', async (t) => {
  const { wire, h } = await update(t, 'off');
  assert.equal(h.server.deltaPairs.length, 0);
  assert.ok(wire > 40_000, `fetched ${wire} bytes`);
});

for (const mode of ['none', 'garbage', 'wrong'] as const) {
  void test(`a delta answer "${mode}" is dropped and the chunks are fetched instead; v2 is exact`, async (t) => {
    const { h, packIds } = await update(t, mode);
    assert.equal(h.server.deltaPairs.length, 2);
    assert.ok(packIds.length > 0, 'the chunks came in packs');
  });
}

void test('a base modified on disk is not trusted: the base content comes from the cache instead', async (t) => {
  const { store, v1, v2 } = await twoReleases(t);
  const h = await harness(t, store);
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  // Someone edits the running release in place (not allowed, but it happens).
  const file = join(h.dataDir, 'apps/svc/releases', v1.root, 'bin/app');
  writeFileSync(file, randomBytes(600_000));
  h.server.deltas = 'ok';
  const before = h.server.bytesSent;
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  await assertRuns(h, v2.root);
  // The delta was made against the signed v1 content, read from the cache, so it still applied:
  // no chunk of bin/app came in a pack.
  const wire = h.server.bytesSent - before;
  assert.ok(wire < 20_000, `fetched ${wire} bytes`);
});

for (const mode of ['link', 'copy', 'off'] as const) {
  void test(`staging with stageReuse=${mode}: unchanged files ${mode === 'link' ? 'share the installed inode' : 'are separate files'}, the tree is exact`, async (t) => {
    const { store, v1, v2 } = await twoReleases(t);
    const h = await harness(t, store, { stageReuse: mode });
    h.assign([v1]);
    assert.equal(await h.converge(), true);
    h.assign([v2]);
    assert.equal(await h.converge(), true);
    await assertRuns(h, v2.root);
    // etc/version changed, bin/app changed; make a v3 that only adds a file: everything else is reused.
    const releases = join(h.dataDir, 'apps/svc/releases');
    const old = statSync(join(releases, v1.root, 'bin/app'));
    const now = statSync(join(releases, v2.root, 'bin/app'));
    assert.notEqual(old.ino, now.ino, 'a changed file is never linked');
    const v3 = await buildRelease(
      store,
      writeTree(join(tempDir(t), 'v3'), {
        'bin/app': readFileSync(join(releases, v2.root, 'bin/app')),
        'etc/version': 'two\n',
        'etc/new': 'fresh\n',
        'etc/extra': 'more\n',
      }),
      { app: 'svc', version: '3', config: { files: {} } },
    );
    h.assign([v3]);
    assert.equal(await h.converge(), true);
    assert.equal(h.engine.records.installed('svc').current?.root, v3.root);
    const inV2 = statSync(join(releases, v2.root, 'bin/app'));
    const inV3 = statSync(join(releases, v3.root, 'bin/app'));
    if (mode === 'link') assert.equal(inV3.ino, inV2.ino);
    else assert.notEqual(inV3.ino, inV2.ino);
    const dir = realpathSync(join(h.dataDir, 'apps/svc/current'));
    assert.ok((await verifyTree(h.engine.cache, dir, v3.root)).ok);
  });
}

/** The file-object id at `path` of the tree `root`, read from the cache. */
async function fileIdAt(h: Harness, root: string, path: string): Promise<string> {
  let id = root;
  for (const name of path.split('/')) {
    const dir = await h.engine.cache.getTreeObject(id);
    assert.equal(dir.type, 'dir');
    const entry = dir.entries.find((e) => e.name === name);
    assert.ok(entry?.hash, `no ${path}`);
    id = entry.hash;
  }
  return id;
}

void test('a file rebuilt from a delta is written once: kept whole in the cache, staged as a hardlink of it', async (t) => {
  const { h, v2 } = await update(t, 'ok');
  const id = await fileIdAt(h, v2.root, 'bin/app');
  assert.equal(h.engine.cache.hasWholeFile(id), true);
  const whole = statSync(h.engine.cache.wholeFilePath(id)!);
  const staged = statSync(join(h.dataDir, 'apps/svc/releases', v2.root, 'bin/app'));
  assert.equal(staged.ino, whole.ino, 'the release file is the cached file');
  // Its chunks are not stored a second time, yet every one reads back (out of the whole file).
  const file = await h.engine.cache.getTreeObject(id);
  assert.equal(file.type, 'file');
  assert.ok((await h.engine.cache.missing(file.chunks.map((c) => c.id))).length > 0);
  for (const c of file.chunks) assert.equal((await h.engine.cache.getChunk(c.id)).length, c.size);
});

void test('a rebuilt file edited in place (release and cache share it): the next stage notices, fetches again, converges exact', async (t) => {
  const { h, store, v2 } = await update(t, 'ok');
  const id = await fileIdAt(h, v2.root, 'bin/app');
  const v3 = await buildRelease(
    store,
    writeTree(join(tempDir(t), 'v3'), {
      'bin/app': readFileSync(h.engine.cache.wholeFilePath(id)!),
      'etc/version': 'three\n',
    }),
    { app: 'svc', version: '3', config: { files: {} } },
  );
  // The app rewrites its own binary in place: the inode the cache keeps whole changes too, so
  // neither the whole file nor the running release can serve v3's (unchanged) bin/app.
  writeFileSync(join(h.dataDir, 'apps/svc/releases', v2.root, 'bin/app'), randomBytes(600_000));
  const before = h.server.bytesSent;
  h.assign([v3]);
  assert.equal(await h.converge(), true);
  await assertRuns(h, v3.root);
  assert.equal(h.engine.cache.hasWholeFile(id), false, 'the changed whole file was removed');
  // The chunks of bin/app that v1 did not share (over 48 KB of random bytes) came again.
  const wire = h.server.bytesSent - before;
  assert.ok(wire > 40_000, `fetched ${wire} bytes`);
});
