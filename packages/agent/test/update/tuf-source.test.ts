/**
 * The TUF assignment as the update engine sees it (src/update/tuf-source.ts): both repositories
 * served where the agent looks for them (`/tuf/image/`, `/tuf/director/<deviceId>/`), each
 * release's root object fetched into the cache and held to what the offline key signed: its id is
 * the signed sha256 and its length the signed length, or nothing is installed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { releaseTarget } from '@flotilla/node-kit';
import type { ErrorCode, ReleaseTargetCustom } from '@flotilla/protocol';
import { TargetFile } from 'tuf-js';
import { ChunkCache } from '../../src/cache/chunk-cache.js';
import type { FetchSink, ObjectFetcher } from '../../src/fetch/fetcher.js';
import { tufAssignment } from '../../src/update/tuf-source.js';
import type { ReleaseSpec } from '../../src/model/release.js';
import { directorEntry, world } from '../tuf/fixture.js';
import type { World } from '../tuf/fixture.js';
import { provision } from '../tuf/helpers.js';
import { quietLogger, stateDb } from './fixtures.js';

const DEVICE = 'dev-tuf-source';

/** Serves the objects the fixture's file server holds at `/objects/<id>`; records what it was asked. */
class FileServerFetcher implements ObjectFetcher {
  readonly asked: string[] = [];
  constructor(private readonly w: World) {}

  async fetch(ids: readonly string[], sink: FetchSink): Promise<void> {
    for (const id of ids) {
      this.asked.push(id);
      const bytes = this.w.server.files.get(`/objects/${id}`);
      if (!bytes) throw new FlotillaError('FLT_OBJECT_MISSING', `no object ${id}`, { details: { id } });
      await sink.putChunk(id, bytes); // verified against the id before it is stored
    }
  }
}

async function setup(t: TestContext) {
  const w = await world({ image: 'tuf/image', director: `tuf/director/${DEVICE}` });
  t.after(() => w.close());
  await provision(w);
  const db = stateDb(t, w.dataDir);
  t.after(() => db.close());
  const cache = await ChunkCache.open({ dir: join(w.dataDir, 'chunks'), db, maxBytes: 1 << 30 });
  const fetcher = new FileServerFetcher(w);
  const assignment = tufAssignment({
    serverUrl: w.server.url,
    deviceId: DEVICE,
    dataDir: w.dataDir,
    trustedRootFile: null,
    token: () => Promise.resolve('device-token'),
    invalidateToken: () => undefined,
    cache,
    fetcher,
    logger: quietLogger(),
    timeoutMs: 10_000,
  });
  return { w, cache, fetcher, assignment, assign: () => assignment(new AbortController().signal) };
}

/** Signs `target` offline in the image repository and assigns it through the director. */
async function assign(w: World, target: TargetFile): Promise<void> {
  w.image.targets = [target];
  await w.image.publish();
  w.director.targets = [directorEntry(target)];
  await w.director.publish();
}

async function refused(run: () => Promise<ReleaseSpec[]>, code: ErrorCode): Promise<FlotillaError> {
  let caught: FlotillaError | undefined;
  await assert.rejects(run(), (e: unknown) => {
    assert.ok(isFlotillaError(e), `a FlotillaError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    caught = e;
    return true;
  });
  return caught!;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

void test('a signed release is returned with the root object fetched into the cache', async (t) => {
  const { w, cache, fetcher, assign: run } = await setup(t);
  const [release, ...rest] = await run();
  assert.equal(rest.length, 0);
  assert.deepEqual(release, {
    app: 'web',
    version: '1.0.0',
    runtime: 'process',
    root: w.web1.hashes.sha256,
    targetPath: w.web1.path,
    config: { command: ['./app.sh'] },
  });
  assert.deepEqual(fetcher.asked, [w.web1.hashes.sha256]);
  assert.deepEqual(Buffer.from(await cache.getObject(release.root)), w.web1Bytes);
});

void test('ahead is told the verified releases before any root object is fetched, and nothing of a refused assignment', async (t) => {
  const { w, fetcher, assignment } = await setup(t);
  const told: { roots: string[]; askedBefore: number }[] = [];
  const ahead = (releases: readonly ReleaseSpec[]) =>
    told.push({ roots: releases.map((r) => r.root), askedBefore: fetcher.asked.length });
  const [release] = await assignment(new AbortController().signal, ahead);
  assert.deepEqual(told, [{ roots: [w.web1.hashes.sha256], askedBefore: 0 }]);
  assert.equal(release?.root, w.web1.hashes.sha256);
  // A target refused in verification (its hash names another object than its root): nothing is told.
  const evil = Buffer.from(JSON.stringify({ type: 'dir', entries: [] }));
  await assign(
    w,
    new TargetFile({
      path: w.web1.path,
      length: evil.length,
      hashes: { sha256: sha256(evil) },
      unrecognizedFields: { custom: w.web1.custom as never },
    }),
  );
  await refused(() => assignment(new AbortController().signal, ahead), 'FLT_TUF_METADATA_INVALID');
  assert.equal(told.length, 1);
});

void test('a root object whose length is not the signed length is refused (FLT_TUF_LENGTH) and removed from the cache', async (t) => {
  const { w, cache, assign: run } = await setup(t);
  // The offline key signed the right hash with a wrong length: the object arrives, its hash
  // verifies, and only the length check stands between it and an install.
  const custom = w.web1.custom as ReleaseTargetCustom;
  for (const length of [w.web1Bytes.length + 1, w.web1Bytes.length - 1]) {
    await assign(w, releaseTarget({ ...custom, version: `1.0.${length}` }, length));
    const e = await refused(run, 'FLT_TUF_LENGTH');
    assert.deepEqual(
      {
        expected: (e.details as { expected?: number }).expected,
        received: (e.details as { received?: number }).received,
      },
      { expected: length, received: w.web1Bytes.length },
    );
    assert.equal(await cache.has(custom.rootObject), false, 'the object of a refused release is not kept');
  }
});

void test('a target whose sha256 is another object than its root object is refused before anything is fetched', async (t) => {
  const { w, cache, fetcher, assign: run } = await setup(t);
  // An object the offline key never signed as a release root, served like any other object.
  const evil = Buffer.from(JSON.stringify({ type: 'dir', entries: [] }));
  const evilId = sha256(evil);
  w.server.files.set(`/objects/${evilId}`, evil);
  const honest = w.web1;
  // Path and release fields name web1's root object; the hashes, that the fetched bytes are held
  // to, name the other object (both repositories agree, so only the target's own check is left).
  const crossed = new TargetFile({
    path: honest.path,
    length: evil.length,
    hashes: { sha256: evilId },
    unrecognizedFields: { custom: honest.custom as never },
  });
  await assign(w, crossed);
  await refused(run, 'FLT_TUF_METADATA_INVALID');
  assert.deepEqual(fetcher.asked, [], 'nothing was fetched');
  assert.equal(await cache.has(evilId), false);
  assert.equal(await cache.has(honest.hashes.sha256!), false);
});
