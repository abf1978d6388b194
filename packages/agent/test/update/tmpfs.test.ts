/**
 * Full disk and unwritable data dir on a real tiny tmpfs (needs mount privileges; skipped without).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { harness } from './engine-harness.js';
import { buildRelease, randomFiles, serverStore, writeTree } from './fixtures.js';

const mounts: string[] = [];

/** A temp dir removed after the test, once the tmpfs mounted inside it is unmounted. */
function baseDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'flt-tmpfs-'));
  t.after(() => {
    for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function mountTmpfs(dir: string, size: string): boolean {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    return false;
  }
  mounts.push(dir);
  return true;
}

void test('a real full disk (tmpfs): the update fails with FLT_DISK_SPACE, v1 keeps running', async (t) => {
  const base = baseDir(t);
  const dataDir = join(base, 'data');
  if (!mountTmpfs(dataDir, '20m')) return t.skip('cannot mount a tmpfs here');
  const store = await serverStore(t);
  const config = { files: { path: join(base, 'site') } };
  const v1 = await buildRelease(store, writeTree(join(base, 'v1'), { 'a.txt': 'one' }), {
    app: 'site',
    version: '1',
    config,
  });
  const v2 = await buildRelease(store, writeTree(join(base, 'v2'), randomFiles(10, 1_000_000)), {
    app: 'site',
    version: '2',
    config,
  });
  const h = await harness(t, store, { dataDir });
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  h.assign([v2]);
  assert.equal(await h.converge(), false);
  const failed = h.reports.find((r) => r.phase === 'failed');
  assert.equal(failed?.error?.code, 'FLT_DISK_SPACE');
  assert.equal(readFileSync(join(base, 'site/a.txt'), 'utf8'), 'one');
  assert.equal(h.engine.records.installed('site').current?.root, v1.root);
});

void test('the disk fills up while staging (the estimate was wrong): FLT_DISK_SPACE, nothing half-installed', async (t) => {
  const base = baseDir(t);
  const dataDir = join(base, 'data');
  if (!mountTmpfs(join(dataDir, 'apps'), '3m')) return t.skip('cannot mount a tmpfs here');
  const store = await serverStore(t);
  const config = { files: { path: join(base, 'site') } };
  const v1 = await buildRelease(store, writeTree(join(base, 'v1'), { 'a.txt': 'one' }), {
    app: 'site',
    version: '1',
    config,
  });
  const v2 = await buildRelease(store, writeTree(join(base, 'v2'), randomFiles(8, 500_000)), {
    app: 'site',
    version: '2',
    config,
  });
  // The probe sees the (large) file system of the cache, not the tiny one of apps/.
  const h = await harness(t, store, { dataDir });
  h.assign([v1]);
  await h.converge();
  h.assign([v2]);
  assert.equal(await h.converge(), false);
  const failed = h.reports.find((r) => r.phase === 'failed');
  assert.equal(failed?.error?.code, 'FLT_DISK_SPACE', JSON.stringify(failed?.error));
  assert.equal(readFileSync(join(base, 'site/a.txt'), 'utf8'), 'one');
  const releases = execFileSync('ls', [join(dataDir, 'apps/site/releases')])
    .toString()
    .trim()
    .split('\n');
  assert.deepEqual(releases, [v1.root], 'no partial release directory is left');
});

void test('an unwritable (read-only) apps directory: FLT_IO is reported, v1 keeps running', async (t) => {
  const base = baseDir(t);
  const dataDir = join(base, 'data');
  const apps = join(dataDir, 'apps');
  if (!mountTmpfs(apps, '10m')) return t.skip('cannot mount a tmpfs here');
  const store = await serverStore(t);
  const config = { files: { path: join(base, 'site') } };
  const v1 = await buildRelease(store, writeTree(join(base, 'v1'), { 'a.txt': 'one' }), {
    app: 'site',
    version: '1',
    config,
  });
  const v2 = await buildRelease(store, writeTree(join(base, 'v2'), { 'a.txt': 'two' }), {
    app: 'site',
    version: '2',
    config,
  });
  const h = await harness(t, store, { dataDir });
  h.assign([v1]);
  await h.converge();
  execFileSync('mount', ['-o', 'remount,ro', apps]);
  h.assign([v2]);
  assert.equal(await h.converge(), false);
  const failed = h.reports.find((r) => r.phase === 'failed');
  assert.equal(failed?.error?.code, 'FLT_IO');
  assert.match(failed?.error?.message ?? '', /EROFS/);
  assert.equal(readFileSync(join(base, 'site/a.txt'), 'utf8'), 'one');
});
