/**
 * A runtime's `prepare` (apply/executors.ts): once the fetch has brought the release into the cache,
 * and before the stage step writes it to disk, the release's runtime may begin what `start` needs
 * (docker: the image loads), reading the release's files from the cache (`ctx.files`). A prepare
 * that fails or hangs never fails the update.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import type { ReleaseSpec } from '../../src/model/release.js';
import { FilesRuntime } from '../../src/runtimes/files-runtime.js';
import type { AppContext } from '../../src/runtimes/runtime.js';
import { FetchArrivals, TreeReads, cacheTreeFiles } from '../../src/apply/tree-files.js';
import { contentId, encodeFrame } from '@flotilla/store';
import { readFileSync, writeFileSync } from 'node:fs';
import { assertCurrent, harness } from './engine-harness.js';
import { buildRelease, randomFiles, serverStore, writeTree } from './fixtures.js';

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

/** The chunk ids of the file at `path` in the tree `root` (from the cache). */
async function chunksAt(
  cache: { getTreeObject: (id: string) => Promise<unknown> },
  root: string,
  path: string,
) {
  let id = root;
  for (const name of path.split('/')) {
    const dir = (await cache.getTreeObject(id)) as { entries: { name: string; hash?: string }[] };
    id = dir.entries.find((e) => e.name === name)!.hash!;
  }
  return ((await cache.getTreeObject(id)) as { chunks: { id: string }[] }).chunks.map((c) => c.id);
}

void test('prepare begins before the fetch ends: it waits for the chunks still arriving, and reads the unchanged ones from the installed file', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const layer = Object.values(randomFiles(1, 3 * 1024 * 1024, 'layer'))[0]!;
  const changed = Buffer.from(layer);
  changed.fill(7, 1024 * 1024, 1024 * 1024 + 100_000);
  const config = { files: {} };
  const v1 = await buildRelease(
    store,
    writeTree(join(base, '1'), { 'img/layer.tar': layer, 'etc/c': 'one\n' }),
    {
      app: APP,
      version: '1',
      config,
    },
  );
  const v2 = await buildRelease(
    store,
    writeTree(join(base, '2'), { 'img/layer.tar': changed, 'etc/c': 'two\n' }),
    {
      app: APP,
      version: '2',
      config,
    },
  );
  let h: Awaited<ReturnType<typeof harness>> | null = null;
  const seen: { missingAtStart: number; c: string | null; layer: boolean }[] = [];
  const runtime = new PreparingRuntime(async (ctx) => {
    const cache = h!.engine.cache;
    const wanted = await chunksAt(cache, ctx.release.root, 'etc/c');
    const missingAtStart = (await cache.missing(wanted)).length;
    const c = (await ctx.files!.read('etc/c'))?.toString('utf8') ?? null;
    const file = await ctx.files!.open('img/layer.tar');
    const parts: Uint8Array[] = [];
    for await (const piece of file!.pieces()) parts.push(piece);
    await file!.close();
    seen.push({
      missingAtStart,
      c,
      layer: Buffer.concat(parts).equals(ctx.release.root === v2.root ? changed : layer),
    });
  });
  h = await harness(t, store, { runtimes: { files: runtime } });
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v2.root);
  // Called once the tree was known, before etc/c's chunk had arrived; it waited for it.
  assert.deepEqual(seen.at(-1), { missingAtStart: 1, c: 'two\n', layer: true });
  // The unchanged chunks come from the installed file, unverified (the reader checks the whole:
  // a docker layer against its diff id): a spoilt installed file shows in the pieces, not in `read`.
  const installed = join(h.dataDir, 'apps', APP, 'releases', v1.root, 'img/layer.tar');
  const spoilt = readFileSync(installed);
  spoilt.fill(1, 0, 1000);
  writeFileSync(installed, spoilt);
  const files = cacheTreeFiles(h.engine.cache, v2.root, {
    base: { root: v1.root, dir: join(h.dataDir, 'apps', APP, 'releases', v1.root) },
  });
  const file = await files.open('img/layer.tar');
  const parts: Uint8Array[] = [];
  for await (const piece of file!.pieces()) parts.push(piece);
  await file!.close();
  assert.equal(Buffer.concat(parts).length, changed.length);
  assert.equal(Buffer.concat(parts).equals(changed), false);
  assert.equal(Buffer.concat(parts).subarray(1000).equals(changed.subarray(1000)), true);
  assert.equal((await files.read('etc/c'))?.toString('utf8'), 'two\n');
});

void test('chunks stored while a reader keeps them are taken from memory once, within the budget, until the fetch ends', async (t) => {
  const store = await serverStore(t);
  const h = await harness(t, store);
  const cache = h.engine.cache;
  const arrivals = new FetchArrivals(cache);
  const chunk = (text: string) => {
    const bytes = Buffer.from(text.repeat(100));
    return { bytes, id: contentId(bytes) };
  };
  const before = chunk('stored before keep ');
  await cache.putChunk(before.id, before.bytes);
  arrivals.keep(1000);
  const [a, b, big] = [chunk('a'), chunk('b'), chunk('over the budget ')];
  await cache.putChunk(a.id, a.bytes);
  // A frame as a pack of frames brings it: its content decoded once, by the store.
  await cache.putFrame(b.id, encodeFrame(b.bytes));
  await cache.putChunk(big.id, big.bytes);
  assert.equal(arrivals.take(before.id), undefined);
  assert.equal(Buffer.from(arrivals.take(a.id)!).equals(a.bytes), true);
  assert.equal(arrivals.take(a.id), undefined); // once
  assert.equal(Buffer.from(arrivals.take(b.id)!).equals(b.bytes), true);
  assert.equal(arrivals.take(big.id), undefined); // 1600 bytes: more than the 800 left
  const late = chunk('c');
  arrivals.end();
  await cache.putChunk(late.id, late.bytes);
  assert.equal(arrivals.take(late.id), undefined);
});

void test("a reader waiting for a chunk fails with the fetch's error, and looks once more when the fetch ends", async (t) => {
  const store = await serverStore(t);
  const h = await harness(t, store);
  const cache = h.engine.cache;
  const cut = new Error('fetch cut');
  const arrivals = new FetchArrivals(cache);
  const bytes = Buffer.from('arrives later');
  const id = contentId(bytes);
  const first = arrivals.expect(id)!;
  const other = arrivals.expect('0'.repeat(64))!;
  await cache.putChunk(id, bytes);
  await first.arrived; // woken by the store
  arrivals.end(cut);
  await assert.rejects(other.arrived, cut);
  await assert.rejects(arrivals.expect(id)!.arrived, cut);
  const done = new FetchArrivals(cache);
  const waiting = done.expect('1'.repeat(64))!;
  done.end();
  await waiting.arrived; // the fetch is over: look once more
  assert.equal(done.expect('1'.repeat(64)), undefined);
});

void test('a file read beside its installed copy is read in sequential runs: repeated content comes from the copy that continues the run', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  // Three random parts, each followed by the same block (as the same text in many files of an
  // image layer): the block's chunks stand at three offsets of the installed file.
  // Seeded, so that the chunk boundaries (content-defined) are the same at every run.
  const part = (seed: string): Buffer => seededBytes(300 * 1024, seed);
  const block = part('block');
  const [a, b, c] = [part('a'), part('b'), part('c')];
  const layer = Buffer.concat([a, block, b, block, c, block]);
  const changed = Buffer.concat([a, block, part('b2'), block, c, block]);
  const { h, v1, v2 } = await layerUpdated(t, store, base, layer, changed);
  const reads = new TreeReads();
  const read = async (): Promise<Buffer> => {
    const files = cacheTreeFiles(h.engine.cache, v2.root, {
      base: { root: v1.root, dir: join(h.dataDir, 'apps', APP, 'releases', v1.root) },
      reads,
    });
    const file = await files.open('img/layer.tar');
    const parts: Uint8Array[] = [];
    const pieces = file!.pieces();
    for await (const piece of pieces) {
      parts.push(piece);
      // Counted from the first piece until the last.
      assert.equal(await settledWithin(reads.over(60_000), 20), false);
    }
    await file!.close();
    return Buffer.concat(parts);
  };
  assert.equal((await read()).equals(changed), true);
  assert.equal(await settledWithin(reads.over(60_000), 20), true);
  // Reads announced ahead (an engine asked to pull, not yet asking for the layer) hold as a read does.
  const announced = cacheTreeFiles(h.engine.cache, v2.root, { reads }).reading!();
  assert.equal(await settledWithin(reads.over(60_000), 20), false);
  announced();
  assert.equal(await settledWithin(reads.over(60_000), 20), true);
  // Spoil the installed file's third block, well inside (past any chunk that straddles c and the
  // block): the reader takes the block's chunks from there, after c, not from the first block.
  const installed = join(h.dataDir, 'apps', APP, 'releases', v1.root, 'img/layer.tar');
  const spoilt = readFileSync(installed);
  const third = 5 * 300 * 1024;
  spoilt.fill(1, third + 200 * 1024, third + 201 * 1024);
  writeFileSync(installed, spoilt);
  const got = await read();
  assert.equal(got.length, changed.length);
  // Taken from the third block, after c (the first block holds the same chunk): the spoilt bytes.
  assert.equal(got.subarray(third + 200 * 1024, third + 201 * 1024).equals(Buffer.alloc(1024, 1)), true);
  // Anything else that differs is those bytes too (a chunk the other blocks do not hold).
  for (let at = 0; at < got.length; at += 1024) {
    const piece = got.subarray(at, at + 1024);
    if (!piece.equals(changed.subarray(at, at + 1024)))
      assert.equal(piece.equals(Buffer.alloc(1024, 1)), true, `at ${at}`);
  }
});

void test('pieces handed back (TreeFile.recycle) hold later reads of the installed file, and what is read stays intact', async (t) => {
  const store = await serverStore(t);
  const base = tempDir(t);
  const layer = seededBytes(24 * 1024 * 1024, 'big');
  const changed = Buffer.concat([
    layer.subarray(0, 12 * 1024 * 1024),
    seededBytes(64 * 1024, 'new'),
    layer.subarray(12 * 1024 * 1024 + 64 * 1024),
  ]);
  const { h, v1, v2 } = await layerUpdated(t, store, base, layer, changed);
  const files = cacheTreeFiles(h.engine.cache, v2.root, {
    base: { root: v1.root, dir: join(h.dataDir, 'apps', APP, 'releases', v1.root) },
  });
  const file = (await files.open('img/layer.tar'))!;
  const parts: Buffer[] = [];
  const memory = new Set<ArrayBufferLike>();
  for await (const piece of file.pieces()) {
    parts.push(Buffer.from(piece));
    memory.add(piece.buffer);
    file.recycle!(piece);
  }
  await file.close();
  assert.equal(Buffer.concat(parts).equals(changed), true);
  // 24 pieces of about 1 MiB in ~8 MiB read ahead, plus the new chunks: far fewer buffers than pieces.
  assert.ok(parts.length >= 24 && memory.size <= 16, `${memory.size} buffers for ${parts.length} pieces`);
});

void test('TreeReads: over() resolves at once with no read under way, waits for the reads, and gives up after its bound', async () => {
  const reads = new TreeReads();
  assert.equal(await settledWithin(reads.over(60_000), 20), true);
  const end = reads.begin();
  const end2 = reads.begin();
  const waiting = reads.over(60_000);
  assert.equal(await settledWithin(waiting, 20), false);
  end();
  end(); // once only: the second read is still under way
  assert.equal(await settledWithin(waiting, 20), false);
  end2();
  assert.equal(await settledWithin(waiting, 20), true);
  const stuck = reads.begin();
  assert.equal(await settledWithin(reads.over(30), 200), true);
  stuck();
});

/** An agent that installed a release holding `img/layer.tar` as `layer`, then one holding `changed`. */
async function layerUpdated(
  t: TestContext,
  store: Awaited<ReturnType<typeof serverStore>>,
  base: string,
  layer: Buffer,
  changed: Buffer,
) {
  const config = { files: {} };
  const v1 = await buildRelease(store, writeTree(join(base, '1'), { 'img/layer.tar': layer }), {
    app: APP,
    version: '1',
    config,
  });
  const v2 = await buildRelease(store, writeTree(join(base, '2'), { 'img/layer.tar': changed }), {
    app: APP,
    version: '2',
    config,
  });
  const h = await harness(t, store);
  for (const release of [v1, v2]) {
    h.assign([release]);
    assert.equal(await h.converge(), true);
  }
  return { h, v1, v2 };
}

/** `size` bytes that look random, the same for the same seed. */
function seededBytes(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  for (let at = 0, i = 0; at < size; at += 32, i++)
    createHash('sha256').update(`${seed}:${i}`).digest().copy(out, at);
  return out;
}

/** Whether `promise` settles within `ms`. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}

void test('expect is told each release its app does not run as soon as the assignment is verified, before its root object is fetched', async (t) => {
  const { store, v1, v2 } = await releases(t);
  const told: { version: string; rootCached: boolean }[] = [];
  let h: Awaited<ReturnType<typeof harness>> | null = null;
  class ExpectingRuntime extends FilesRuntime {
    async expect(release: ReleaseSpec): Promise<void> {
      told.push({ version: release.version, rootCached: await h!.engine.cache.has(release.root) });
    }
  }
  h = await harness(t, store, { runtimes: { files: new ExpectingRuntime() } });
  h.assign([v1]);
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v1.root);
  // The release it runs is not expected again.
  assert.equal(await h.converge(), true);
  h.assign([v2]);
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v2.root);
  // Each told once by the engine (before the root object) and once more as its fetch step begins.
  assert.deepEqual(told, [
    { version: '1', rootCached: false },
    { version: '1', rootCached: true },
    { version: '2', rootCached: false },
    { version: '2', rootCached: true },
  ]);
  // Rolled back by an operator, v2 is held while the assignment names it: a pass runs no update
  // of it, and nothing is expected.
  told.length = 0;
  assert.equal((await h.engine.rollback(APP, new AbortController().signal)).kind, 'rolled-back');
  await assertCurrent(h, APP, v1.root);
  assert.equal(await h.converge(), true);
  await assertCurrent(h, APP, v1.root);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(told, []);
});
