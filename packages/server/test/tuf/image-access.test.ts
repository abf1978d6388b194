/**
 * Who may read the image repository (docs/security.md, "Reading the image repository with standard TUF
 * clients"): every file — metadata and the targets' bytes — needs an operator (token or session) or an
 * accepted device's token. Through the real app, on both databases.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Release } from '@flotilla/protocol';
import { TEST_ADMIN_PASSWORD, bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode, sessionCookieOf } from '../helpers/http.js';
import { acceptedDevice, createKey, enroll, deviceToken } from '../devices/fixtures.js';
import { assign, publish, treeOf } from '../objects/push.js';
import { initTrust, signReleases } from '../releases/signing.js';

forEachDialect((dialect) => {
  let t: TestApp;
  let release: Release;
  let rootBytes: Buffer;
  before(async () => {
    t = await createTestApp({ dialect });
    const tree = await treeOf({ 'index.html': '<h1>signed</h1>', 'lib/app.js': 'console.log(2)\n' });
    release = await publish(t, tree, 'web', '1.0.0');
    rootBytes = Buffer.from(await tree.store.getObject(tree.root));
    const keys = await initTrust(t);
    await signReleases(t, keys, [release], () => rootBytes.length);
  });
  after(() => t.close());

  const metadata = ['root.json', '1.root.json', 'timestamp.json', '1.snapshot.json', '1.targets.json'];
  const targetUrls = () => [
    `/tuf/image/targets/web/1.0.0/${release.rootObject}.${release.rootObject}`,
    `/tuf/image/targets/web/1.0.0/${release.rootObject}`,
  ];
  const allUrls = () => [...metadata.map((f) => `/tuf/image/${f}`), ...targetUrls()];

  void test('without credentials every image repository file is 401 and carries nothing', async () => {
    for (const url of allUrls()) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await t.app.inject({ method, url });
        assert.equal(res.statusCode, 401, `${method} ${url}`);
        assert.equal(res.headers['cache-control'], 'no-store', url);
        assert.match(String(res.headers['www-authenticate']), /^Bearer/, url);
        if (method === 'GET') {
          assert.equal(errorCode(res), 'FLT_UNAUTHENTICATED', url);
          assert.doesNotMatch(res.body, /signed|targets/, url);
        }
      }
    }
  });

  void test('a bad or pending device token is refused with its own code', async () => {
    const url = '/tuf/image/1.targets.json';
    const forged = await t.app.inject({ method: 'GET', url, headers: bearer(`flt_dt_${'x'.repeat(43)}`) });
    assert.equal(forged.statusCode, 401);
    assert.equal(errorCode(forged), 'FLT_TOKEN_INVALID');
    const apiToken = await t.app.inject({ method: 'GET', url, headers: bearer(`flt_at_${'x'.repeat(43)}`) });
    assert.equal(errorCode(apiToken), 'FLT_TOKEN_INVALID');
    const { secret } = await createKey(t, { name: 'manual', autoAccept: false });
    const pending = await enroll(t, secret);
    const pendingToken = await deviceToken(t, pending);
    const refused = await t.app.inject({ method: 'GET', url, headers: bearer(pendingToken) });
    assert.equal(refused.statusCode, 403);
    assert.equal(errorCode(refused), 'FLT_DEVICE_PENDING');
  });

  void test('an accepted device (assigned the release), an operator token of any role and a session cookie read every file', async () => {
    const device = await acceptedDevice(t);
    // A device reads the targets of its own releases only (issue 13 item 1).
    await assign(t, release, device.id);
    const login = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { username: 'admin', password: TEST_ADMIN_PASSWORD },
    });
    const cookie = sessionCookieOf(login);
    const credentials: Record<string, Record<string, string>> = {
      device: bearer(device.token),
      viewer: bearer(await t.tokenFor('viewer')),
      session: { cookie: `flotilla_session=${cookie}` },
    };
    for (const [who, headers] of Object.entries(credentials)) {
      for (const url of allUrls()) {
        const res = await t.app.inject({ method: 'GET', url, headers });
        assert.equal(res.statusCode, 200, `${who} ${url}: ${res.body}`);
        assert.match(String(res.headers['cache-control']), /^private/, `${who} ${url}`);
      }
    }
  });

  void test("a target's URL serves the root object's bytes, whose length and SHA-256 are the signed ones", async () => {
    const device = await acceptedDevice(t);
    await assign(t, release, device.id);
    const targets = await t.app.inject({
      method: 'GET',
      url: '/tuf/image/1.targets.json',
      headers: bearer(device.token),
    });
    const signed = targets.json<{
      signed: { targets: Record<string, { length: number; hashes: { sha256: string } }> };
    }>().signed.targets[release.targetPath];
    assert.ok(signed, 'the release is an image target');
    for (const url of targetUrls()) {
      const res = await t.app.inject({ method: 'GET', url, headers: bearer(device.token) });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers['content-type'], 'application/octet-stream');
      assert.equal(res.rawPayload.length, signed.length);
      assert.equal(createHash('sha256').update(res.rawPayload).digest('hex'), signed.hashes.sha256);
      assert.deepEqual(res.rawPayload, rootBytes);
    }
  });

  void test('names that are no current target are 404 even with a valid token', async () => {
    const device = await acceptedDevice(t);
    const id = release.rootObject;
    const other = 'a'.repeat(64);
    for (const url of [
      `/tuf/image/targets/web/2.0.0/${id}.${id}`,
      `/tuf/image/targets/api/1.0.0/${id}`,
      `/tuf/image/targets/web/1.0.0/${other}.${id}`,
      `/tuf/image/targets/web/1.0.0/${other}`,
      `/tuf/image/targets/web/1.0.0/${id}.${id}.${id}`,
      `/tuf/image/targets/web/1.0.0/${id.toUpperCase()}`,
      `/tuf/image/targets/web/..%2F..%2F1.0.0/${id}`,
      `/tuf/image/targets/web/1.0.0`,
    ]) {
      const res = await t.app.inject({ method: 'GET', url, headers: bearer(device.token) });
      assert.equal(res.statusCode, 404, url);
      assert.ok(['FLT_NOT_FOUND', 'FLT_ROUTE_NOT_FOUND'].includes(errorCode(res)), url);
    }
  });
});
