import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { OBJECT_GC_ROUTE, ReleaseRoutes } from '@flotilla/protocol';
import type { GcResponse, Release, ReleaseDiff, ReleaseList } from '@flotilla/protocol';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode } from '../helpers/http.js';
import {
  createRelease,
  encodePack,
  missingOf,
  noise,
  publish,
  pushTree,
  recordsOf,
  treeOf,
  uploadRaw,
} from '../objects/push.js';
import { initTrust, signReleases } from './signing.js';

forEachDialect((dialect) => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ dialect });
  });
  after(() => t.close());

  void test('create refuses a tree with missing objects (409 listing them) and stores nothing', async () => {
    const tree = await treeOf({ 'a.txt': 'a', 'b/c.bin': noise(30_000) });
    const absentRoot = await createRelease(t, { app: 'miss', version: '1', rootObject: tree.root });
    assert.equal(absentRoot.statusCode, 409);
    assert.equal(errorCode(absentRoot), 'FLT_RELEASE_OBJECTS_MISSING');
    const ids = tree.store.ids();
    const [first, ...rest] = ids;
    const res = await uploadRaw(t, t.adminToken, await encodePack(await recordsOf(tree.store, rest)));
    assert.equal(res.statusCode, 200, res.body);
    const partial = await createRelease(t, { app: 'miss', version: '1', rootObject: tree.root });
    assert.equal(errorCode(partial), 'FLT_RELEASE_OBJECTS_MISSING');
    assert.deepEqual(partial.json<{ error: { details: { missing: string[] } } }>().error.details.missing, [
      first,
    ]);
    const get = await t.app.inject({
      method: 'GET',
      url: '/api/v1/releases/miss/1',
      headers: bearer(t.adminToken),
    });
    assert.equal(errorCode(get), 'FLT_NOT_FOUND');
  });

  void test('create, show, list, duplicates and conflicts', async () => {
    const tree = await treeOf({ 'index.html': '<h1>hi</h1>', 'lib/app.js': 'console.log(1)\n' });
    await pushTree(t, tree);
    const res = await createRelease(t, {
      app: 'web',
      version: '1.3.0',
      rootObject: tree.root,
      config: { files: { path: '/srv/web' } },
    });
    assert.equal(res.statusCode, 201, res.body);
    const release = res.json<Release>();
    assert.equal(release.targetPath, `web/1.3.0/${tree.root}`);
    assert.equal(release.files, 2);
    assert.equal(release.bytes, '<h1>hi</h1>'.length + 'console.log(1)\n'.length);
    assert.ok(release.storedBytes > 0);
    assert.equal(release.signed, false);
    assert.deepEqual(release.config, { files: { path: '/srv/web' } });

    const same = await createRelease(t, {
      app: 'web',
      version: '1.3.0',
      rootObject: tree.root,
      config: { files: { path: '/srv/web' } },
    });
    assert.equal(same.statusCode, 200);
    const other = await treeOf({ 'index.html': 'other' });
    await pushTree(t, other);
    const conflict = await createRelease(t, { app: 'web', version: '1.3.0', rootObject: other.root });
    assert.equal(errorCode(conflict), 'FLT_CONFLICT');
    const otherConfig = await createRelease(t, {
      app: 'web',
      version: '1.3.0',
      rootObject: tree.root,
      config: { files: { path: '/srv/other' } },
    });
    assert.equal(errorCode(otherConfig), 'FLT_CONFLICT');

    const shown = await t.app.inject({
      method: 'GET',
      url: '/api/v1/releases/web/1.3.0',
      headers: bearer(await t.tokenFor('viewer')),
    });
    assert.deepEqual(shown.json(), release);
    await publish(t, other, 'api', '2');
    const list = await t.app.inject({
      method: 'GET',
      url: `${ReleaseRoutes.releases}?app=web`,
      headers: bearer(t.adminToken),
    });
    assert.deepEqual(
      list.json<ReleaseList>().items.map((r) => `${r.app}@${r.version}`),
      ['web@1.3.0'],
    );
  });

  void test('hostile input: a chunk as root, bad names, unknown fields', async () => {
    const tree = await treeOf({ 'only.txt': 'just a chunk' });
    await pushTree(t, tree);
    const chunkId = tree.store.ids()[0]!;
    const notDir = await createRelease(t, { app: 'bad', version: '1', rootObject: chunkId });
    assert.equal(notDir.statusCode, 400, notDir.body);
    assert.equal(
      errorCode(await createRelease(t, { app: '../x', version: '1', rootObject: tree.root })),
      'FLT_VALIDATION',
    );
    assert.equal(
      errorCode(await createRelease(t, { app: 'ok', version: 'a/b', rootObject: tree.root })),
      'FLT_VALIDATION',
    );
    const extra = await t.app.inject({
      method: 'POST',
      url: ReleaseRoutes.releases,
      headers: bearer(t.adminToken),
      payload: { app: 'ok', version: '1', runtime: 'files', rootObject: tree.root, signed: true },
    });
    assert.equal(errorCode(extra), 'FLT_VALIDATION');
    assert.equal(
      errorCode(await createRelease(t, { app: 'ok', version: '1', rootObject: tree.root, runtime: 'vm' })),
      'FLT_VALIDATION',
    );
  });

  void test('diff reports added, removed and modified files and what to fetch', async () => {
    const shared = noise(50_000);
    const v1 = await treeOf({ 'keep.bin': shared, 'gone.txt': 'bye', 'conf/app.ini': 'a=1' });
    const v2 = await treeOf({ 'keep.bin': shared, 'new.txt': 'hello', 'conf/app.ini': 'a=22' });
    await publish(t, v1, 'diffapp', '1.0');
    await publish(t, v2, 'diffapp', '2.0');
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/v1/releases/diffapp/diff?from=1.0&to=2.0',
      headers: bearer(await t.tokenFor('viewer')),
    });
    assert.equal(res.statusCode, 200, res.body);
    const diff = res.json<ReleaseDiff>();
    assert.deepEqual(diff.added, [{ path: 'new.txt', size: 5 }]);
    assert.deepEqual(diff.removed, [{ path: 'gone.txt', size: 3 }]);
    assert.deepEqual(diff.modified, [{ path: 'conf/app.ini', oldSize: 3, newSize: 4 }]);
    assert.ok(diff.fetchObjects >= 4, `${diff.fetchObjects}`); // root, conf dir, 2 files, 2 chunks
    assert.ok(diff.fetchBytes > 0 && diff.fetchBytes < 50_000, `${diff.fetchBytes}`);
    const missing = await t.app.inject({
      method: 'GET',
      url: '/api/v1/releases/diffapp/diff?from=1.0&to=9',
      headers: bearer(t.adminToken),
    });
    assert.equal(errorCode(missing), 'FLT_NOT_FOUND');
  });

  void test('signed becomes true once offline-signed targets name the release', async () => {
    const tree = await treeOf({ 'signed.txt': 'sign me' });
    const release = await publish(t, tree, 'signedapp', '1');
    assert.equal(release.signed, false);
    const keys = await initTrust(t);
    const rootLength = (await tree.store.getObject(tree.root)).length;
    await signReleases(t, keys, [release], () => rootLength + 1);
    const wrongLength = await t.app.inject({
      method: 'GET',
      url: '/api/v1/releases/signedapp/1',
      headers: bearer(t.adminToken),
    });
    assert.equal(wrongLength.json<Release>().signed, false, 'a target with another length does not sign it');
    await signReleases(t, keys, [release], () => rootLength);
    const shown = await t.app.inject({
      method: 'GET',
      url: '/api/v1/releases/signedapp/1',
      headers: bearer(t.adminToken),
    });
    assert.equal(shown.json<Release>().signed, true);
  });

  void test('roles: viewers cannot create, deployers cannot delete or collect garbage', async () => {
    const viewer = await t.tokenFor('viewer');
    const deployer = await t.tokenFor('deployer');
    const tree = await treeOf({ 'r.txt': 'roles' });
    await pushTree(t, tree);
    assert.equal(
      errorCode(await createRelease(t, { app: 'roles', version: '1', rootObject: tree.root }, viewer)),
      'FLT_FORBIDDEN',
    );
    assert.equal(
      (await createRelease(t, { app: 'roles', version: '1', rootObject: tree.root }, deployer)).statusCode,
      201,
    );
    const del = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/releases/roles/1',
      headers: bearer(deployer),
    });
    assert.equal(errorCode(del), 'FLT_FORBIDDEN');
    const gc = await t.app.inject({ method: 'POST', url: OBJECT_GC_ROUTE, headers: bearer(deployer) });
    assert.equal(errorCode(gc), 'FLT_FORBIDDEN');
  });

  void test('GC keeps everything within the grace period', async () => {
    const tree = await treeOf({ 'orphan.txt': 'nobody references me' });
    await pushTree(t, tree);
    const res = await t.app.inject({ method: 'POST', url: OBJECT_GC_ROUTE, headers: bearer(t.adminToken) });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json<GcResponse>().deleted, []);
    assert.ok(res.json<GcResponse>().kept >= tree.store.ids().length);
    assert.deepEqual(await missingOf(t, t.adminToken, tree.store.ids()), []);
  });
});

forEachDialect((dialect) => {
  void test('GC past the grace period removes only unreferenced objects; deleting a release frees its own', async () => {
    const t = await createTestApp({ dialect, config: { objectGcGraceMs: 0 } });
    try {
      const shared = noise(40_000);
      const kept = await treeOf({ 'shared.bin': shared, 'a.txt': 'release a' });
      const dropped = await treeOf({ 'shared.bin': shared, 'b.txt': 'release b' });
      const orphan = await treeOf({ 'orphan.txt': 'never released' });
      await publish(t, kept, 'gc', 'a');
      await publish(t, dropped, 'gc', 'b');
      await pushTree(t, orphan);
      const gc = async () =>
        (
          await t.app.inject({ method: 'POST', url: OBJECT_GC_ROUTE, headers: bearer(t.adminToken) })
        ).json<GcResponse>();
      const first = await gc();
      assert.deepEqual(first.deleted.sort(), orphan.store.ids().sort());
      assert.ok(first.bytes > 0);
      assert.deepEqual(await missingOf(t, t.adminToken, [...kept.store.ids(), ...dropped.store.ids()]), []);

      const del = await t.app.inject({
        method: 'DELETE',
        url: '/api/v1/releases/gc/b',
        headers: bearer(t.adminToken),
      });
      assert.equal(del.statusCode, 204, del.body);
      const second = await gc();
      const onlyB = dropped.store.ids().filter((id) => !kept.store.ids().includes(id));
      assert.deepEqual(second.deleted.sort(), onlyB.sort());
      assert.deepEqual(await missingOf(t, t.adminToken, kept.store.ids()), []);
      const audit = await t.ctx.db
        .selectFrom('audit_log')
        .select('action')
        .where('action', 'in', ['release.create', 'release.delete', 'objects.gc'])
        .execute();
      assert.equal(audit.length, 2 + 1 + 2);
    } finally {
      await t.close();
    }
  });
});

forEachDialect((dialect) => {
  void test('the OpenAPI document lists the object, release and deployment routes', async () => {
    const t = await createTestApp({ dialect });
    try {
      const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
      const paths = Object.keys(res.json<{ paths: Record<string, unknown> }>().paths);
      for (const path of [
        '/api/v1/objects/missing',
        '/api/v1/objects/upload',
        '/api/v1/objects/{id}',
        '/api/v1/objects/pack',
        '/api/v1/objects/gc',
        '/api/v1/releases',
        '/api/v1/releases/{app}/{version}',
        '/api/v1/releases/{app}/diff',
        '/api/v1/deployments',
        '/api/v1/deployments/status',
        '/api/v1/devices/{id}/apps',
        '/api/v1/devices/{id}/apps/{app}/{action}',
        '/api/v1/device/reports',
      ])
        assert.ok(paths.includes(path), `${path} missing from ${paths.join(', ')}`);
    } finally {
      await t.close();
    }
  });
});
