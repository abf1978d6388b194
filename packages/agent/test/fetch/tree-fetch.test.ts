/**
 * HttpFetcher.fetchTree against a small server speaking the tree-pack route (protocol
 * `ObjectRoutes.treePack`): the tree objects the device lacks in one request; an older server
 * (404 for the route) answered by a silent fallback, asked once; a cut, a refused or a lying pack
 * falls back too, keeping only verified records the tree names; a failing sink is an error.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { randomBytes } from 'node:crypto';
import { FlotillaError, ObjectRoutes, PACK_CODEC_HEADER } from '@flotilla/protocol';
import { FsStore, buildTree, parseObject } from '@flotilla/store';
import { compress } from 'zstd-napi';
import { canFetchTrees } from '../../src/fetch/fetcher.js';
import type { ObjectFetcher } from '../../src/fetch/fetcher.js';
import { HttpFetcher } from '../../src/fetch/http-fetcher.js';
import { tempDir } from '@flotilla/testkit';
import { packRecords } from '../update/object-server.js';

type Mode = 'ok' | 'old' | 'cut' | 'extra' | 'tamper' | 'error';

async function treeOf(store: FsStore, dir: string, files: Record<string, string | Buffer>) {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return (await buildTree(dir, { sink: store })).root;
}

/** Tree objects under `root`, directories first, each once: what the server's walk gives. */
async function closure(store: FsStore, root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (id: string) => {
    if (out.includes(id)) return;
    out.push(id);
    const object = parseObject(await store.getObject(id));
    if (object.type === 'dir') for (const e of object.entries) if (e.hash) await walk(e.hash);
  };
  await walk(root);
  return out;
}

async function setup(t: TestContext) {
  const base = tempDir(t);
  const store = await FsStore.open({ root: join(base, 'server') });
  const shared = { 'lib/a/b.txt': 'deep', 'lib/c.bin': randomBytes(5000) };
  const v1 = await treeOf(store, join(base, 'v1'), { ...shared, 'app/main.js': 'one' });
  const v2 = await treeOf(store, join(base, 'v2'), { ...shared, 'app/main.js': 'two', 'new/n.txt': 'n' });
  const state = { mode: 'ok' as Mode, requests: [] as { root: string; have: string[] }[] };
  const server = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      if (req.method !== 'POST' || req.url !== ObjectRoutes.treePack || state.mode === 'old') {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end('{"error":{"code":"FLT_ROUTE_NOT_FOUND","message":"no route"}}');
      }
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { root: string; have: string[] };
      state.requests.push(body);
      if (state.mode === 'error' || !(await store.has(body.root))) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end('{"error":{"code":"FLT_OBJECT_MISSING","message":"not stored"}}');
      }
      const held = new Set<string>();
      for (const h of body.have)
        if (await store.has(h)) for (const id of await closure(store, h)) held.add(id);
      const ids = (await closure(store, body.root)).filter((id) => !held.has(id));
      if (state.mode === 'extra')
        for await (const id of store.list())
          if (!ids.includes(id)) {
            ids.push(id); // a chunk, which no tree pack carries
            break;
          }
      let raw = await packRecords(store, ids, (id) => state.mode === 'tamper' && id !== body.root);
      if (state.mode === 'cut') raw = raw.subarray(0, raw.length - 40);
      res.writeHead(200, { [PACK_CODEC_HEADER]: 'zstd' });
      res.end(compress(raw));
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fetcher = new HttpFetcher({
    baseUrl: url,
    headers: () => Promise.resolve({ authorization: 'Bearer x' }),
    partialDir: join(base, 'partial'),
  });
  const device = await FsStore.open({ root: join(base, 'device') });
  return { store, device, fetcher, state, v1, v2, base };
}

void test('an HttpFetcher can fetch trees; a fetcher without fetchTree cannot', () => {
  const http = new HttpFetcher({ baseUrl: 'http://x', headers: () => Promise.resolve({}), partialDir: '/x' });
  assert.equal(canFetchTrees(http), true);
  const plain: ObjectFetcher = { fetch: () => Promise.resolve() };
  assert.equal(canFetchTrees(plain), false);
});

void test('one request brings the tree objects the device lacks, and nothing else', async (t) => {
  const { store, device, fetcher, state, v1, v2 } = await setup(t);
  for (const id of await closure(store, v1)) await device.putObject(id, await store.getObject(id));
  let wire = 0;
  assert.equal(await fetcher.fetchTree(v2, [v1], device, { onWireBytes: (n) => (wire += n) }), true);
  assert.deepEqual(state.requests, [{ root: v2, have: [v1], codec: 'zstd' }]);
  assert.ok(wire > 0);
  assert.deepEqual(await device.missing(await closure(store, v2)), [], 'every tree object of v2');
  const chunks: string[] = [];
  for (const id of await closure(store, v2)) {
    const object = parseObject(await store.getObject(id));
    if (object.type === 'file') chunks.push(...object.chunks.map((c) => c.id));
  }
  assert.deepEqual((await device.missing(chunks)).length, new Set(chunks).size, 'no chunk came');
});

void test('an older server (404 for the route): false, silently, and it is not asked again', async (t) => {
  const { device, fetcher, state, v2 } = await setup(t);
  state.mode = 'old';
  const fallbacks: FlotillaError[] = [];
  const onFallback = (e: FlotillaError) => fallbacks.push(e);
  assert.equal(await fetcher.fetchTree(v2, [], device, { onFallback }), false);
  state.mode = 'ok';
  assert.equal(await fetcher.fetchTree(v2, [], device, { onFallback }), false);
  assert.deepEqual(state.requests, [], 'the second call sent nothing');
  assert.deepEqual(fallbacks, [], 'an older server is no failure');
  assert.equal(await device.has(v2), false);
});

void test('a cut, lying or refused pack: false with the reason; only verified records the tree names are kept', async (t) => {
  const { store, device, fetcher, state, v2 } = await setup(t);
  const cases: [Mode, string][] = [
    ['cut', 'FLT_NETWORK'],
    ['extra', 'FLT_PACK_INVALID'],
    ['tamper', 'FLT_HASH_MISMATCH'],
    ['error', 'FLT_OBJECT_MISSING'],
  ];
  const tree = new Set(await closure(store, v2));
  for (const [mode, code] of cases) {
    state.mode = mode;
    const fallbacks: FlotillaError[] = [];
    assert.equal(
      await fetcher.fetchTree(v2, [], device, { onFallback: (e) => fallbacks.push(e) }),
      false,
      mode,
    );
    assert.deepEqual(
      fallbacks.map((e) => e.code),
      [code],
      mode,
    );
    for await (const id of device.list()) assert.ok(tree.has(id), `${mode}: ${id} is not of the tree`);
  }
  state.mode = 'ok';
  assert.equal(await fetcher.fetchTree(v2, [], device), true, 'failures do not turn the route off');
  assert.deepEqual(await device.missing([...tree]), []);
});

void test('a failing sink fails the call; an unknown root over a real answer is a fallback', async (t) => {
  const { fetcher, v2 } = await setup(t);
  const full = new FlotillaError('FLT_DISK_SPACE', 'full');
  const sink = { putChunk: () => Promise.reject(full), putFrame: () => Promise.reject(full) };
  await assert.rejects(fetcher.fetchTree(v2, [], sink), { code: 'FLT_DISK_SPACE' });
  const fallbacks: string[] = [];
  const ok = { putChunk: () => Promise.resolve(), putFrame: () => Promise.resolve() };
  const unknown = 'f'.repeat(64);
  assert.equal(
    await fetcher.fetchTree(unknown, [], ok, { onFallback: (e) => fallbacks.push(e.code) }),
    false,
  );
  assert.deepEqual(fallbacks, ['FLT_OBJECT_MISSING']);
});

void test('an aborted request rejects rather than falling back', async (t) => {
  const { device, fetcher, v2 } = await setup(t);
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(fetcher.fetchTree(v2, [], device, { signal: controller.signal }));
});
