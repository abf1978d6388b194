import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { FsStore } from '@flotilla/store';
import { HttpFetcher } from '../../src/fetch/http-fetcher.js';
import { TokenBucket } from '../../src/fetch/token-bucket.js';
import { tempDir } from '@flotilla/testkit';
import { buildRelease, randomFiles, serverStore, writeTree } from '../update/fixtures.js';
import { startObjectServer } from '../update/object-server.js';

async function setup(t: TestContext) {
  const store = await serverStore(t);
  const base = tempDir(t);
  const release = await buildRelease(store, writeTree(join(base, 'src'), randomFiles(12, 40_000)), {
    app: 'a',
    version: '1',
  });
  const ids: string[] = [];
  for await (const id of store.list()) ids.push(id);
  const server = await startObjectServer(store);
  t.after(() => server.close());
  const local = await FsStore.open({ root: join(base, 'cache') });
  const fetcher = (extra: Partial<ConstructorParameters<typeof HttpFetcher>[0]> = {}) =>
    new HttpFetcher({
      baseUrl: server.url,
      headers: () => Promise.resolve({ authorization: 'Bearer x' }),
      partialDir: join(base, 'partial'),
      ...extra,
    });
  return { store, server, local, fetcher, ids, release, base };
}

void test('the pack endpoint fetches every object, verified, as the stored frames or compressed as one stream', async (t) => {
  const { server, local, fetcher, ids, store } = await setup(t);
  let wire = 0;
  await fetcher().fetch(ids, local, { onWireBytes: (n) => (wire += n) });
  assert.deepEqual(await local.missing(ids), []);
  assert.equal(server.objectGets.length, 0);
  assert.equal(wire, server.bytesSent);
  // By default the frames as the server stores them, stored as they came.
  assert.deepEqual(server.packCodecs, ['frames']);
  for (const id of ids) assert.equal((await local.getFrame(id)).equals(await store.getFrame(id)), true);
  for (const codec of ['gzip', 'identity', 'zstd'] as const) {
    const other = await FsStore.open({ root: join(tempDir(t), codec) });
    await fetcher({ packCodec: codec }).fetch(ids, other);
    assert.deepEqual(await other.missing(ids), []);
  }
});

void test('a connection cut mid-pack: what arrived is kept, only the rest is fetched, per object', async (t) => {
  const { server, fetcher, ids } = await setup(t);
  for (const codec of ['identity', 'frames'] as const) {
    const local = await FsStore.open({ root: join(tempDir(t), codec) });
    server.cut = { afterBytes: 200_000, times: 1 };
    server.objectGets.length = 0;
    await fetcher({ packCodec: codec, batchSize: 1000 }).fetch(ids, local);
    assert.deepEqual(await local.missing(ids), []);
    assert.ok(server.objectGets.length > 0, 'the rest came per object');
    assert.ok(server.objectGets.length < ids.length, 'records before the cut were not fetched again');
  }
});

void test('a cut per-object transfer resumes with Range from the partial file', async (t) => {
  const { server, local, fetcher, ids, base, store } = await setup(t);
  const totalFrameBytes = async (list: string[]) => {
    let n = 0;
    for (const id of list) n += (await store.getFrame(id)).length;
    return n;
  };
  server.packDisabled = true;
  server.cut = { afterBytes: 10_000, times: 3 };
  await fetcher({ concurrency: 1 }).fetch(ids, local);
  assert.deepEqual(await local.missing(ids), []);
  assert.ok(server.ranges.length >= 1, `ranges: ${server.ranges.join(',')}`);
  // Each resume starts where the cut left off: a whole number of cuts of 10,000 bytes, never 0.
  for (const r of server.ranges) assert.equal(Number(r.split(':')[1]) % 10_000, 0, r);
  assert.ok(server.bytesSent < 1.1 * (await totalFrameBytes(ids)), 'resumed, not refetched from the start');
  assert.deepEqual(readdirSync(join(base, 'partial')), [], 'partial files are removed once stored');
});

void test('a server that refuses the frames codec (an older one) is asked for a zstd pack, once', async (t) => {
  const { server, local, fetcher, ids } = await setup(t);
  server.framesRefused = true;
  const f = fetcher({ batchSize: Math.ceil(ids.length / 2) });
  await f.fetch(ids.slice(0, 3), local);
  await f.fetch(ids.slice(3), local);
  assert.deepEqual(await local.missing(ids), []);
  assert.equal(server.objectGets.length, 0);
  assert.deepEqual(server.packCodecs, ['frames', 'zstd', 'zstd', 'zstd']);
});

void test('a tampered object is refused (FLT_HASH_MISMATCH) and never stored, by pack or per object', async (t) => {
  const { server, local, fetcher, release, store } = await setup(t);
  server.tamper.add(release.root);
  for (const codec of ['frames', 'zstd'] as const) {
    await assert.rejects(fetcher({ packCodec: codec }).fetch([release.root], local), {
      code: 'FLT_HASH_MISMATCH',
    });
    assert.equal(await local.has(release.root), false);
  }
  // Per object: the frame decodes (its codec and length are intact) to other content than its id.
  const chunk = (await store.list().next()).value as string;
  server.tamper.clear();
  server.tamper.add(chunk);
  server.packDisabled = true;
  await assert.rejects(fetcher().fetch([chunk], local), { code: 'FLT_HASH_MISMATCH' });
  assert.equal(await local.has(chunk), false);
  assert.ok(server.objectGets.includes(chunk), 'it came per object');
});

void test('an object the server lacks is a clear FLT_OBJECT_MISSING, by pack or per object', async (t) => {
  const { local, fetcher, server, ids } = await setup(t);
  const f = fetcher();
  await assert.rejects(f.fetch(['0'.repeat(64)], local), { code: 'FLT_OBJECT_MISSING' });
  // The pack route stays in use afterwards.
  await f.fetch(ids.slice(0, 2), local);
  assert.equal(server.objectGets.length, 0);
  server.packDisabled = true;
  await assert.rejects(fetcher().fetch(['0'.repeat(64)], local), { code: 'FLT_OBJECT_MISSING' });
  assert.equal(existsSync(local.pathOf('0'.repeat(64))), false);
});

/** A clock that only moves when the bucket sleeps (or the test says so); records each requested wait. */
function recordingClock() {
  const clock = {
    ms: 0,
    sleeps: [] as number[],
    now: () => clock.ms,
    sleep: (ms: number) => {
      clock.sleeps.push(ms);
      clock.ms += ms;
      return Promise.resolve();
    },
  };
  return clock;
}

const total = (values: number[]) => values.reduce((a, b) => a + b, 0);

void test('the token bucket lets one second of bytes through at once, then asks to wait for the rest at its rate', async () => {
  const clock = recordingClock();
  const bucket = new TokenBucket(1000, clock);
  await bucket.take(500);
  await bucket.take(500);
  assert.deepEqual(clock.sleeps, [], 'within the one-second burst: no wait');
  await bucket.take(250);
  assert.deepEqual(clock.sleeps, [250], '250 bytes past the burst at 1000 B/s: 250 ms');
  await bucket.take(1000);
  assert.deepEqual(clock.sleeps, [250, 1000], 'the 250 ms slept paid the debt; 1000 more bytes: 1 s');
  // Idle time refills the bucket, but never beyond one second's worth.
  clock.ms += 60_000;
  await bucket.take(1000);
  assert.deepEqual(clock.sleeps, [250, 1000], 'a full bucket after a pause');
  await bucket.take(3000);
  assert.deepEqual(clock.sleeps, [250, 1000, 3000], 'a minute idle banked one second, not sixty');
  const unlimited = new TokenBucket(0, clock);
  await unlimited.take(1e12);
  assert.deepEqual(clock.sleeps, [250, 1000, 3000], '0 B/s is unlimited');
});

void test('downloads, by pack and per object, wait out every byte past the first second at the configured rate', async (t) => {
  const { server, fetcher, ids } = await setup(t);
  const rate = 100_000;
  for (const perObject of [false, true]) {
    server.packDisabled = perObject;
    const clock = recordingClock();
    const local = await FsStore.open({ root: join(tempDir(t), 'cache') });
    let wire = 0;
    await fetcher({ packCodec: 'identity', bytesPerSecond: rate, bandwidthClock: clock }).fetch(ids, local, {
      onWireBytes: (n) => (wire += n),
    });
    assert.deepEqual(await local.missing(ids), []);
    assert.ok(wire > 3 * rate, `${wire} bytes came over the wire`);
    // Every byte past the one-second burst costs 1/rate s of wait: the waits asked for add up to
    // that (each rounded up to a whole millisecond, which the next wait takes back).
    const expectedMs = ((wire - rate) / rate) * 1000;
    const askedMs = total(clock.sleeps);
    const how = perObject ? 'per object' : 'by pack';
    assert.ok(
      askedMs >= expectedMs - 1e-6,
      `${how}: waited ${askedMs} ms for ${wire} bytes, want ${expectedMs}`,
    );
    assert.ok(
      askedMs <= expectedMs + 1,
      `${how}: waited ${askedMs} ms for ${wire} bytes, want ${expectedMs}`,
    );
  }
  assert.ok(server.objectGets.length >= ids.length, 'the second round came per object');
});

void test(
  'the timeout is for silence, not the whole transfer: a pack slower than it in total still arrives whole',
  { timeout: 30_000 },
  async (t) => {
    const { server, local, fetcher, ids } = await setup(t);
    // About 480 KB at 100 KB/s (a one-second burst, then throttled): about 4 s in all, against a 1 s
    // timeout (with room for a loaded machine between chunks).
    await fetcher({ packCodec: 'identity', bytesPerSecond: 100_000, timeoutMs: 1_000 }).fetch(ids, local);
    assert.deepEqual(await local.missing(ids), []);
    assert.equal(server.objectGets.length, 0, 'nothing fell back to per-object requests');
  },
);

void test(
  'a pack that goes silent is given up after the timeout and the objects come one by one',
  { timeout: 30_000 },
  async (t) => {
    const { server, local, fetcher, ids } = await setup(t);
    // The pack's response starts, then nothing more arrives (a stalled proxy); the stream ends only
    // when the request is aborted.
    const stalled: typeof globalThis.fetch = (_input, init) =>
      Promise.resolve(
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              init?.signal?.addEventListener('abort', () => controller.error(init.signal?.reason));
            },
          }),
          { status: 200, headers: { 'x-flotilla-pack-codec': 'identity' } },
        ),
      );
    await fetcher({ fetch: stalled, timeoutMs: 300 }).fetch(ids, local);
    assert.deepEqual(await local.missing(ids), []);
    assert.equal(server.objectGets.length, ids.length, 'every object came per object');
  },
);
