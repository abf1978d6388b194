/**
 * Staging begins while the download runs (apply/staging.ts): once the tree's objects are in the
 * cache, the release's directories are made and its unchanged files linked into
 * `releases/<id>.tmp`; files still arriving wait. A download that fails then leaves no `.tmp`, and
 * the running release as it was.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { contentId } from '@flotilla/store';
import { tempDir } from '@flotilla/testkit';
import { assertCurrent, harness } from './engine-harness.js';
import { buildRelease, serverStore, writeTree } from './fixtures.js';

const APP = 'svc';
const EXTRA = 'more in v2\n';

/** v1 installed; v2 is v1 plus etc/extra, built, not yet assigned. */
async function installedV1(t: TestContext) {
  const store = await serverStore(t);
  const base = tempDir(t);
  const files = { 'bin/app': randomBytes(100_000), 'etc/config': 'alpha\n', 'lib/deep/x': 'x\n' };
  const config = { files: {} };
  const v1 = await buildRelease(store, writeTree(join(base, '1'), files), { app: APP, version: '1', config });
  const v2 = await buildRelease(store, writeTree(join(base, '2'), { ...files, 'etc/extra': EXTRA }), {
    app: APP,
    version: '2',
    config,
  });
  const h = await harness(t, store);
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  return { h, v1, v2, releases: join(h.dataDir, 'apps', APP, 'releases') };
}

/** Waits (up to 5 s) for `path` to exist; whether it did. */
async function appears(path: string): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    if (existsSync(path)) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return false;
}

void test('unchanged files are linked into the new release while the changed ones are still downloading', async (t) => {
  const { h, v1, v2, releases } = await installedV1(t);
  const temp = join(releases, `${v2.root}.tmp`);
  const extraChunk = contentId(Buffer.from(EXTRA));
  let seen: { linked: boolean; sameInode: boolean; extraThere: boolean } | null = null;
  h.server.beforePack = async (ids) => {
    if (!ids.includes(extraChunk)) return;
    const linked = await appears(join(temp, 'lib/deep/x'));
    seen = {
      linked,
      sameInode:
        linked && lstatSync(join(temp, 'bin/app')).ino === lstatSync(join(releases, v1.root, 'bin/app')).ino,
      extraThere: existsSync(join(temp, 'etc/extra')),
    };
  };
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  assert.deepEqual(seen, { linked: true, sameInode: true, extraThere: false });
  await assertCurrent(h, APP, v2.root);
  assert.deepEqual(readdirSync(releases).sort(), [v1.root, v2.root].sort());
});

void test('a download that fails after staging began leaves no .tmp, and the running release as it was', async (t) => {
  const { h, v1, v2, releases } = await installedV1(t);
  const extraChunk = contentId(Buffer.from(EXTRA));
  let staged = false;
  h.server.beforePack = async (ids) => {
    if (!ids.includes(extraChunk)) return;
    staged = await appears(join(releases, `${v2.root}.tmp`, 'lib/deep/x'));
    h.server.cut = { afterBytes: 0, times: 1000 }; // this answer and every later one is cut
  };
  h.assign([v2]);
  assert.equal(await h.converge(), false);
  assert.equal(staged, true, 'staging had begun');
  const failed = h.reports.find((r) => r.phase === 'failed');
  assert.equal(failed?.error?.code, 'FLT_NETWORK');
  assert.deepEqual(readdirSync(releases), [v1.root], 'no .tmp left');
  await assertCurrent(h, APP, v1.root);

  h.server.cut = null;
  h.server.beforePack = null;
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v2.root);
});
