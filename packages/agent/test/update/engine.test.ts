import assert from 'node:assert/strict';
import { chmodSync, readFileSync, readlinkSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { verifyTree } from '@flotilla/store';
import { memoryLogger } from '../helpers/agent.js';
import { tempDir } from '@flotilla/testkit';
import type { ReleaseSpec } from '../../src/model/release.js';
import { harness } from './engine-harness.js';
import { buildRelease, randomFiles, serverStore, writeTree } from './fixtures.js';

void test('v1 then v2 (10 % of files changed): converges, fetches about the changed chunks only, keeps v1 for rollback', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const files = randomFiles(40, 20_000);
  const installPath = join(base, 'installed', 'site');
  const config = { files: { path: installPath } };
  const v1 = await buildRelease(store, writeTree(join(base, 'v1'), files), {
    app: 'site',
    version: '1',
    config,
  });
  const changed = { ...files, ...randomFiles(4, 20_000) }; // overwrites f0..f3
  const v2 = await buildRelease(store, writeTree(join(base, 'v2'), changed), {
    app: 'site',
    version: '2',
    config,
  });
  const h = await harness(t, store);

  h.assign([v1]);
  assert.equal(await h.converge(), true);
  assert.equal(readlinkSync(join(h.dataDir, 'apps/site/current')), `releases/${v1.root}`);
  assert.equal(readFileSync(join(installPath, 'd1/f1.bin')).length, 20_000);
  assert.equal(h.engine.records.installed('site').current?.root, v1.root);

  const before = h.server.bytesSent;
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  const fetched = h.server.bytesSent - before;
  // Random data does not compress: the four changed files are ~80 KB; metadata adds a little.
  assert.ok(fetched < 1.3 * 4 * 20_000 + 8_000, `fetched ${fetched} bytes`);
  const installed = h.engine.records.installed('site');
  assert.equal(installed.current?.root, v2.root);
  assert.deepEqual(
    installed.previous.map((r) => r.root),
    [v1.root],
  );
  assert.ok(
    (await verifyTree(h.engine.cache, realpathSync(join(h.dataDir, 'apps/site/current')), v2.root)).ok,
  );
  assert.deepEqual(readdirSync(join(h.dataDir, 'apps/site/releases')).sort(), [v1.root, v2.root].sort());
  const phases = h.reports.filter((r) => r.targetPath === v2.targetPath).map((r) => r.phase);
  // Each phase once, in order (downloading repeats with progress).
  assert.deepEqual(
    phases.filter((p, i) => phases.indexOf(p) === i),
    ['verifying', 'downloading', 'installing', 'stopping', 'switching', 'starting', 'health', 'committed'],
  );
  const committed = h.reports.find((r) => r.phase === 'committed' && r.targetPath === v2.targetPath);
  assert.ok((committed?.bytesFetched ?? 0) > 0);
  assert.equal(h.engine.records.journal('site'), null);

  // The operator's rollback is instant (v1 is on disk) and holds v2 until the assignment changes.
  const outcome = await h.engine.rollback('site', new AbortController().signal);
  assert.equal(outcome.kind, 'rolled-back');
  assert.equal(readlinkSync(join(h.dataDir, 'apps/site/current')), `releases/${v1.root}`);
  assert.equal(h.engine.records.installed('site').held?.root, v2.root);
  const sent = h.server.bytesSent;
  assert.equal(await h.converge(), true);
  assert.equal(h.engine.records.installed('site').current?.root, v1.root, 'v2 is held, not reinstalled');
  assert.equal(h.server.bytesSent, sent);
});

void test('a failing post-install command rolls back to v1 with the reason', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const installPath = join(base, 'site');
  const v1 = await buildRelease(store, writeTree(join(base, 'v1'), { 'a.txt': 'one' }), {
    app: 'site',
    version: '1',
    config: { files: { path: installPath } },
  });
  const v2 = await buildRelease(store, writeTree(join(base, 'v2'), { 'a.txt': 'two' }), {
    app: 'site',
    version: '2',
    config: { files: { path: installPath, postInstall: ['sh', '-c', 'echo broken >&2; exit 3'] } },
  });
  const h = await harness(t, store);
  h.assign([v1]);
  await h.converge();
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  assert.equal(readFileSync(join(installPath, 'a.txt'), 'utf8'), 'one');
  const installed = h.engine.records.installed('site');
  assert.equal(installed.current?.root, v1.root);
  assert.equal(installed.held?.root, v2.root);
  const rolled = h.reports.find((r) => r.phase === 'rolled-back');
  assert.equal(rolled?.error?.code, 'FLT_RUNTIME_FAILED');
  assert.match(rolled?.error?.message ?? '', /exit code 3.*broken/);
});

void test('not enough disk: FLT_DISK_SPACE is reported before downloading, the running release stays', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const config = { files: { path: join(base, 'site') } };
  const v1 = await buildRelease(store, writeTree(join(base, 'v1'), { 'a.txt': 'one' }), {
    app: 'site',
    version: '1',
    config,
  });
  const v2 = await buildRelease(store, writeTree(join(base, 'v2'), randomFiles(5, 50_000)), {
    app: 'site',
    version: '2',
    config,
  });
  let free = 10 * 1024 * 1024 * 1024;
  const h = await harness(t, store, { disk: { freeBytes: () => Promise.resolve(free) } });
  h.assign([v1]);
  await h.converge();
  free = 1024 * 1024;
  const chunkGets = h.server.packIds.length;
  h.assign([v2]);
  assert.equal(await h.converge(), false);
  const failed = h.reports.find((r) => r.phase === 'failed');
  assert.equal(failed?.error?.code, 'FLT_DISK_SPACE');
  assert.match(failed?.error?.message ?? '', /not enough disk space/);
  // Only metadata (the directory and file objects) was fetched, no chunk.
  assert.ok(h.server.packIds.length - chunkGets <= 1 + 5 + 4);
  assert.equal(readlinkSync(join(h.dataDir, 'apps/site/current')), `releases/${v1.root}`);
  assert.equal(h.engine.records.journal('site'), null);
  free = 10 * 1024 * 1024 * 1024;
  assert.equal(await h.converge(), true);
  assert.equal(h.engine.records.installed('site').current?.root, v2.root);
});

void test('a corrupt chunk in the cache is removed, fetched again, and the update completes', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const config = { files: { path: join(base, 'site') } };
  const shared = randomFiles(3, 30_000);
  const v1 = await buildRelease(store, writeTree(join(base, 'v1'), shared), {
    app: 'site',
    version: '1',
    config,
  });
  const v2 = await buildRelease(store, writeTree(join(base, 'v2'), { ...shared, 'new.txt': 'new' }), {
    app: 'site',
    version: '2',
    config,
  });
  const h = await harness(t, store);
  h.assign([v1]);
  await h.converge();
  // Flip bytes in every stored chunk frame of v1 (shared by v2).
  const cache = h.engine.cache.store;
  for await (const id of cache.list()) {
    const path = cache.pathOf(id);
    const bytes = readFileSync(path);
    if (bytes.length < 1000) continue;
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    writeFileSync(path, bytes);
  }
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  assert.equal(h.engine.records.installed('site').current?.root, v2.root);
  assert.ok(
    (await verifyTree(h.engine.cache, realpathSync(join(h.dataDir, 'apps/site/current')), v2.root)).ok,
  );
});

/**
 * Makes `dir` unwritable for this process until the returned function is called: its permission
 * bits for a user; for root, whom permission bits do not stop, a read-only bind mount of it onto
 * itself. Null when neither is possible (root without the right to mount).
 */
function makeUnwritable(dir: string): (() => void) | null {
  if (process.getuid?.() !== 0) {
    chmodSync(dir, 0o500);
    return () => chmodSync(dir, 0o700);
  }
  try {
    execFileSync('mount', ['--bind', dir, dir], { stdio: 'ignore' });
  } catch {
    return null;
  }
  try {
    execFileSync('mount', ['-o', 'remount,bind,ro', dir], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return null;
  }
  return () => execFileSync('umount', [dir], { stdio: 'ignore' });
}

void test('an unwritable data dir: a clear FLT_IO error is reported and the running release keeps running', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const { h, v1, v2 } = await siteOneThenTwo(t, store, base, { files: { path: join(base, 'site') } });
  const releases = join(h.dataDir, 'apps/site/releases');
  const restore = makeUnwritable(releases);
  if (!restore)
    return t.skip('running as root without the right to mount: cannot make a directory unwritable');
  try {
    // The new release directory cannot be created: EACCES for a user, EROFS for root.
    await assert.rejects(writeFile(join(releases, 'probe'), ''), { code: /^(EACCES|EROFS)$/ });
    h.assign([v2]);
    assert.equal(await h.converge(), false);
  } finally {
    restore();
  }
  const failed = h.reports.find((r) => r.phase === 'failed');
  assert.equal(failed?.error?.code, 'FLT_IO', JSON.stringify(failed?.error));
  assert.equal(readFileSync(join(base, 'site/a.txt'), 'utf8'), 'one');
  assert.equal(h.engine.records.installed('site').current?.root, v1.root);
});

void test('an invalid runtime configuration is refused before anything is fetched', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const bad = await buildRelease(store, writeTree(join(base, 'v1'), { 'a.txt': 'one' }), {
    app: 'site',
    version: '1',
    config: { files: { path: 'relative/path', extra: true } },
  });
  const { logger, lines } = memoryLogger();
  const h = await harness(t, store, { logger });
  h.assign([bad]);
  assert.equal(await h.converge(), false);
  const failed = h.reports.find((r) => r.phase === 'failed');
  assert.equal(failed?.error?.code, 'FLT_VALIDATION');
  assert.match(failed?.error?.message ?? '', /files\.extra: unknown key/);
  assert.equal(h.engine.records.installed('site').current, null);
  // The refusal is in the device's own log too (at error), not only in the server's report.
  const refusal = lines.find((l) => l.level >= 50 && /release refused/.test(l.msg));
  assert.ok(refusal, JSON.stringify(lines.map((l) => l.msg)));
  assert.equal(refusal.app, 'site');
});

void test('a files release pushed without any configuration installs (its default config is valid)', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const plain = await buildRelease(store, writeTree(join(base, 'v1'), { 'a.txt': 'one' }), {
    app: 'plain',
    version: '1',
    config: {},
  });
  const h = await harness(t, store);
  h.assign([plain]);
  assert.equal(await h.converge(), true, JSON.stringify(h.reports));
  assert.equal(h.engine.records.installed('plain').current?.version, '1');
  assert.equal(readFileSync(join(h.dataDir, 'apps', 'plain', 'current', 'a.txt'), 'utf8'), 'one');
});

void test('the journal is written when a step begins a new recovery group, not at every step', async (t) => {
  const store = await serverStore(t);
  const { h, v2 } = await siteOneThenTwo(t, store, tempDir(t), { files: {} });
  const written: string[] = [];
  const records = h.engine.records;
  const write = records.writeJournal.bind(records);
  records.writeJournal = (entry) => {
    written.push(entry.step);
    write(entry);
  };
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  // fetch, stage | stop, switch, start, health | commit | cleanup (update/planner.ts planRecovery).
  assert.deepEqual(written, ['fetch', 'stop', 'commit', 'cleanup']);
  assert.equal(records.journal('site'), null);
});

/** Releases 1 and 2 of the files app `site` (a.txt "one", then "two"), and a harness running 1. */
async function siteOneThenTwo(
  t: Parameters<typeof harness>[0],
  store: Awaited<ReturnType<typeof serverStore>>,
  base: string,
  config: Record<string, unknown>,
): Promise<{ h: Awaited<ReturnType<typeof harness>>; v1: ReleaseSpec; v2: ReleaseSpec }> {
  const release = (version: string, text: string): Promise<ReleaseSpec> =>
    buildRelease(store, writeTree(join(base, `v${version}`), { 'a.txt': text }), {
      app: 'site',
      version,
      config,
    });
  const v1 = await release('1', 'one');
  const v2 = await release('2', 'two');
  const h = await harness(t, store);
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  return { h, v1, v2 };
}
