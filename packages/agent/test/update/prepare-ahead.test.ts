/**
 * A runtime's `prepare` (apply/staging.ts): once the staged tree is complete, and before it is
 * synced and renamed into place, the release's runtime may begin what `start` needs (docker: the
 * image loads). It sees the complete `.tmp` tree; a prepare that fails or hangs never fails the
 * update.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import type { ReleaseSpec } from '../../src/model/release.js';
import { FilesRuntime } from '../../src/runtimes/files-runtime.js';
import type { AppContext } from '../../src/runtimes/runtime.js';
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

void test('prepare sees the complete staged tree before it is renamed into place', async (t) => {
  const { store, v1, v2 } = await releases(t);
  const seen: { dir: string; extra: string; final: boolean }[] = [];
  let h: Awaited<ReturnType<typeof harness>> | null = null;
  const runtime = new PreparingRuntime((ctx) => {
    seen.push({
      dir: ctx.releaseDir,
      extra: existsSync(join(ctx.releaseDir, 'etc/extra'))
        ? readFileSync(join(ctx.releaseDir, 'etc/extra'), 'utf8')
        : '',
      final: existsSync(join(h!.dataDir, 'apps', APP, 'releases', ctx.release.root)),
    });
    return Promise.resolve();
  });
  h = await harness(t, store, { runtimes: { files: runtime } });
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v2.root);
  const releasesDir = join(h.dataDir, 'apps', APP, 'releases');
  assert.deepEqual(seen.at(-1), { dir: join(releasesDir, `${v2.root}.tmp`), extra: 'two\n', final: false });
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
