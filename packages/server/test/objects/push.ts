/**
 * Test helpers for pushes: real trees built by `buildTree` from temp dirs into a client-side
 * MemoryStore, packs encoded per the protocol and uploaded through the real routes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { ObjectRoutes, PACK_CODEC_HEADER, PACK_CONTENT_TYPE, ReleaseRoutes } from '@flotilla/protocol';
import type { PackCodec, Release, UploadResponse } from '@flotilla/protocol';
import { MemoryStore, buildTree } from '@flotilla/store';
import type { LightMyRequestResponse } from 'fastify';
import { compressor, writePack } from '../../src/objects/pack.js';
import type { PackRecord } from '../../src/objects/pack.js';
import { bearer } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';

export interface BuiltTree {
  root: string;
  store: MemoryStore;
}

/** Builds a tree from `files` (relative path → content) in a temp dir. */
export async function treeOf(files: Record<string, string | Buffer>): Promise<BuiltTree> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-tree-'));
  try {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    const store = new MemoryStore();
    const { root } = await buildTree(dir, { sink: store });
    return { root, store };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Random (incompressible) bytes from a seed-free source; sizes in bytes. */
export function noise(bytes: number): Buffer {
  return randomBytes(bytes);
}

export async function encodePack(records: PackRecord[], codec: PackCodec = 'identity'): Promise<Buffer> {
  const out = compressor(codec);
  const piped = Readable.from(writePack(Readable.from(records))).pipe(out);
  return buffer(piped);
}

export async function recordsOf(store: MemoryStore, ids: readonly string[]): Promise<PackRecord[]> {
  return Promise.all(ids.map(async (id) => ({ id, bytes: Buffer.from(await store.getObject(id)) })));
}

export function uploadRaw(
  t: TestApp,
  token: string,
  body: Buffer,
  codec: PackCodec = 'identity',
): Promise<LightMyRequestResponse> {
  return t.app.inject({
    method: 'POST',
    url: ObjectRoutes.upload,
    headers: { ...bearer(token), 'content-type': PACK_CONTENT_TYPE, [PACK_CODEC_HEADER]: codec },
    payload: body,
  });
}

export async function missingOf(t: TestApp, token: string, ids: readonly string[]): Promise<string[]> {
  const res = await t.app.inject({
    method: 'POST',
    url: ObjectRoutes.missing,
    headers: bearer(token),
    payload: { ids },
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ missing: string[] }>().missing;
}

/** The push protocol: ask which objects are missing, upload those as one pack. */
export async function pushTree(
  t: TestApp,
  tree: BuiltTree,
  token = t.adminToken,
  codec: PackCodec = 'zstd',
): Promise<UploadResponse> {
  const missing = await missingOf(t, token, tree.store.ids());
  const res = await uploadRaw(t, token, await encodePack(await recordsOf(tree.store, missing), codec), codec);
  assert.equal(res.statusCode, 200, res.body);
  return res.json<UploadResponse>();
}

export async function createRelease(
  t: TestApp,
  body: {
    app: string;
    version: string;
    rootObject: string;
    runtime?: string;
    config?: Record<string, unknown>;
  },
  token = t.adminToken,
): Promise<LightMyRequestResponse> {
  return t.app.inject({
    method: 'POST',
    url: ReleaseRoutes.releases,
    headers: bearer(token),
    payload: { runtime: 'files', ...body },
  });
}

/** Pushes the tree and creates the release, asserting success. */
export async function publish(t: TestApp, tree: BuiltTree, app: string, version: string): Promise<Release> {
  await pushTree(t, tree);
  const res = await createRelease(t, { app, version, rootObject: tree.root });
  assert.equal(res.statusCode, 201, res.body);
  return res.json<Release>();
}

/** Deploys `release` to the device (it may then read the release's objects). */
export async function assign(t: TestApp, release: Release, deviceId: string): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: ReleaseRoutes.deploy,
    headers: bearer(t.adminToken),
    payload: { app: release.app, version: release.version, deviceId },
  });
  assert.equal(res.statusCode, 200, res.body);
}

/**
 * The device runs `from` and is assigned `to`: it may read both, and gets deltas for the file pairs
 * between them, as in a real update. `from` is recorded as committed directly (as a report of an
 * earlier update would have), so that no background delta precomputation races the test.
 */
export async function assignUpdate(
  t: TestApp,
  device: { id: string; token: string },
  from: Release,
  to: Release,
): Promise<void> {
  await assign(t, to, device.id);
  await t.ctx.db
    .updateTable('device_apps')
    .set({ current: from.targetPath })
    .where('device_id', '=', device.id)
    .where('app', '=', to.app)
    .execute();
}
