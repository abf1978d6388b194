/**
 * A runtime's `prepare` (apply/executors.ts): once the fetch has brought the release into the cache,
 * and before the stage step writes it to disk, the release's runtime may begin what `start` needs
 * (docker: the image loads), reading the release's files from the cache (`ctx.files`). A prepare
 * that fails or hangs never fails the update.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import type { ReleaseSpec } from '../../src/model/release.js';
import { FilesRuntime } from '../../src/runtimes/files-runtime.js';
import type { AppContext } from '../../src/runtimes/runtime.js';
import { cacheTreeFiles } from '../../src/apply/tree-files.js';
import { assertCurrent, harness } from './engine-harness.js';
import { buildRelease, serverStore, writeTree } from './fixtures.js';

const APP = 'svc';

/** The files runtime, with a `prepare` that runs `onPrepare`. */
class PreparingRuntime extends FilesRuntime {
  constructor(private readonly onPrepare: (ctx: AppContext) => Promise<void>) {
    super();
  }
  prepare(ctx: AppContext): Promise<void> {
    return this.onPrepare(ctx);
  }
}

async function releases(
  t: TestContext,
): Promise<{ store: Awaited<ReturnType<typeof serverStore>>; v1: ReleaseSpec; v2: ReleaseSpec }> {
  const store = await serverStore(t);
  const base = tempDir(t);
  const files = { 'bin/app': 'one\n', 'etc/config': 'alpha\n' };
  const config = { files: {} };
  const v1 = await buildRelease(store, writeTree(join(base, '1'), files), { app: APP, version: '1', config });
  const v2 = await buildRelease(store, writeTree(join(base, '2'), { ...files, 'etc/extra': 'two\n' }), {
    app: APP,
    version: '2',
    config,
  });
  return { store, v1, v2 };
}

void test('prepare reads the fetched release from the cache before it is staged', async (t) => {
  const { store, v1, v2 } = await releases(t);
  const seen: { extra: string | null; missing: Buffer | null; staged: boolean }[] = [];
  let h: Awaited<ReturnType<typeof harness>> | null = null;
  const runtime = new PreparingRuntime(async (ctx) => {
    const staged = join(h!.dataDir, 'apps', APP, 'releases', ctx.release.root);
    seen.push({
      extra: (await ctx.files!.read('etc/extra'))?.toString('utf8') ?? null,
      missing: await ctx.files!.read('etc/none'),
      staged: existsSync(staged),
    });
  });
  h = await harness(t, store, { runtimes: { files: runtime } });
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v2.root);
  assert.deepEqual(seen.at(-1), { extra: 'two\n', missing: null, staged: false });
  // The same reader by hand: a file in pieces, with its size; a directory or a missing path is none.
  const files = cacheTreeFiles(h.engine.cache, v2.root);
  const app = await files.open('bin/app');
  assert.equal(app?.size, 4);
  const parts: Uint8Array[] = [];
  for await (const piece of app.pieces()) parts.push(piece);
  assert.equal(Buffer.concat(parts).toString('utf8'), 'one\n');
  assert.equal(await files.open('bin'), null);
  assert.equal(await files.open('bin/none'), null);
});

void test('a prepare that fails, or never ends, does not fail the update', async (t) => {
  const { store, v1, v2 } = await releases(t);
  let calls = 0;
  const runtime = new PreparingRuntime(() => {
    calls++;
    // v1: fails; v2: never settles (staging stops waiting after a bound).
    return calls === 1 ? Promise.reject(new Error('engine gone')) : new Promise<void>(() => undefined);
  });
  const h = await harness(t, store, { runtimes: { files: runtime } });
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v1.root);
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v2.root);
  assert.equal(calls, 2);
});
