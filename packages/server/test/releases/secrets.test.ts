/**
 * Release secrets on the server (docs/security.md "Secrets in runtime config"): declarations are
 * checked at release creation; values are accepted only when they open the signed commitments,
 * stored encrypted under `<dataDir>/secrets.key` (mode 0600); a deployment seals them to each
 * device inside its director target and refuses while one is missing; only an admin reveals one,
 * audited; no other answer holds a value.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createPrivateKey } from 'node:crypto';
import { ReleaseRoutes, isFlotillaError, routePath } from '@flotilla/protocol';
import { openSealedSecret, parseMetadata, secretCommitment, secretNonce } from '@flotilla/node-kit';
import type { Release } from '@flotilla/protocol';
import { SecretVault } from '../../src/secrets/index.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode } from '../helpers/http.js';
import { createRelease, pushTree, treeOf } from '../objects/push.js';

const VALUE = `sk-${secretNonce().slice(0, 32)}`;
const config = {
  process: { command: ['/bin/true'], env: { MODE: 'x', API_KEY: { $secret: 'API_KEY' } } },
};

forEachDialect((dialect) => {
  let t: TestApp;
  let release: Release;
  const opening = { value: VALUE, nonce: secretNonce() };
  const commitment = secretCommitment('API_KEY', opening);
  const secretsUrl = () => routePath(ReleaseRoutes.secrets, { app: 'api', version: '1' });
  const put = (secrets: Record<string, unknown>, token = t.adminToken) =>
    t.app.inject({ method: 'PUT', url: secretsUrl(), headers: bearer(token), payload: { secrets } });

  before(async () => {
    t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
  });
  after(() => t.close());

  void test('a release must commit to exactly the secrets its config references', async () => {
    const tree = await treeOf({ 'api.js': 'api' });
    await pushTree(t, tree);
    const undeclared = await createRelease(t, {
      app: 'api',
      version: '1',
      runtime: 'process',
      rootObject: tree.root,
      config,
    });
    assert.equal(errorCode(undeclared), 'FLT_VALIDATION');
    const res = await t.app.inject({
      method: 'POST',
      url: ReleaseRoutes.releases,
      headers: bearer(t.adminToken),
      payload: {
        app: 'api',
        version: '1',
        runtime: 'process',
        rootObject: tree.root,
        config,
        secrets: { API_KEY: commitment, UNUSED: commitment },
      },
    });
    assert.equal(errorCode(res), 'FLT_VALIDATION');
    const ok = await t.app.inject({
      method: 'POST',
      url: ReleaseRoutes.releases,
      headers: bearer(t.adminToken),
      payload: {
        app: 'api',
        version: '1',
        runtime: 'process',
        rootObject: tree.root,
        config,
        secrets: { API_KEY: commitment },
      },
    });
    assert.equal(ok.statusCode, 201, ok.body);
    release = ok.json<Release>();
    assert.equal(release.signed, true);
    assert.deepEqual(release.secrets, [{ name: 'API_KEY', commitment, stored: false }]);
  });

  void test('deploying refuses while a value is missing; values must open their commitments', async () => {
    const device = await acceptedDevice(t);
    const deploy = () =>
      t.app.inject({
        method: 'POST',
        url: ReleaseRoutes.deploy,
        headers: bearer(t.adminToken),
        payload: { app: 'api', version: '1', deviceId: device.id },
      });
    const missing = await deploy();
    assert.equal(missing.statusCode, 409);
    assert.equal(errorCode(missing), 'FLT_SECRET_MISSING');

    assert.equal((await put({ API_KEY: opening }, await t.tokenFor('viewer'))).statusCode, 403);
    assert.equal(errorCode(await put({ OTHER: opening })), 'FLT_VALIDATION');
    const wrong = await put({ API_KEY: { value: 'substituted', nonce: opening.nonce } });
    assert.equal(wrong.statusCode, 422);
    assert.equal(errorCode(wrong), 'FLT_SECRET_MISMATCH');
    assert.ok(!wrong.body.includes('substituted'));
    const stored = await put({ API_KEY: opening }, await t.tokenFor('deployer'));
    assert.equal(stored.statusCode, 200, stored.body);
    assert.deepEqual(stored.json(), { stored: ['API_KEY'], missing: [] });
    assert.ok(!stored.body.includes(VALUE));

    // At rest: encrypted under a key file only the server's user can read.
    const row = await t.ctx.db.selectFrom('release_secrets').selectAll().executeTakeFirstOrThrow();
    assert.ok(!row.ciphertext.includes(VALUE) && !Buffer.from(row.ciphertext, 'base64url').includes(VALUE));
    assert.equal((await stat(join(t.dataDir, 'secrets.key'))).mode & 0o777, 0o600);

    const deployed = await deploy();
    assert.equal(deployed.statusCode, 200, deployed.body);
    const get = async (file: string) =>
      (
        await t.app.inject({
          method: 'GET',
          url: `/tuf/director/${device.id}/${file}`,
          headers: bearer(device.token),
        })
      ).rawPayload;
    const timestamp = parseMetadata('timestamp', await get('timestamp.json'));
    const snapshot = parseMetadata(
      'snapshot',
      await get(`${timestamp.signed.snapshotMeta.version}.snapshot.json`),
    );
    const targetsBytes = await get(`${snapshot.signed.meta['targets.json']!.version}.targets.json`);
    assert.ok(!targetsBytes.includes(VALUE));
    const custom = parseMetadata('targets', targetsBytes).signed.targets[release.targetPath]!.custom;
    assert.deepEqual(custom.secrets, { API_KEY: commitment });
    const sealed = (custom.sealedSecrets as Record<string, string>).API_KEY!;
    const seed = Buffer.from(
      createPrivateKey(device.kp.privateKeyPem).export({ format: 'jwk' }).d!,
      'base64url',
    );
    const ctx = { deviceId: device.id, targetPath: release.targetPath, name: 'API_KEY' };
    assert.deepEqual(await openSealedSecret(seed, ctx, sealed), opening);
    // Bound to its place: the same ciphertext does not open as another secret or release.
    await assert.rejects(
      openSealedSecret(seed, { ...ctx, name: 'OTHER' }, sealed),
      (e: unknown) => isFlotillaError(e) && e.code === 'FLT_SECRET_SEALED_INVALID',
    );

    for (const url of [
      ReleaseRoutes.releases,
      routePath(ReleaseRoutes.release, { app: 'api', version: '1' }),
      `/api/v1/devices/${device.id}/apps`,
      `${ReleaseRoutes.deployStatus}?app=api&version=1`,
      '/api/v1/audit',
    ]) {
      const res = await t.app.inject({ method: 'GET', url, headers: bearer(t.adminToken) });
      assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
      assert.ok(!res.body.includes(VALUE), `${url} shows the value`);
    }
  });

  void test('only an admin reveals a value, audited', async () => {
    const url = routePath(ReleaseRoutes.secretReveal, { app: 'api', version: '1', name: 'API_KEY' });
    for (const role of ['viewer', 'deployer'] as const) {
      const res = await t.app.inject({ method: 'POST', url, headers: bearer(await t.tokenFor(role)) });
      assert.equal(res.statusCode, 403, role);
    }
    const missing = await t.app.inject({
      method: 'POST',
      url: routePath(ReleaseRoutes.secretReveal, { app: 'api', version: '1', name: 'NOPE' }),
      headers: bearer(t.adminToken),
    });
    assert.equal(errorCode(missing), 'FLT_SECRET_MISSING');
    const res = await t.app.inject({ method: 'POST', url, headers: bearer(t.adminToken) });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json<{ value: string }>().value, VALUE);
    assert.equal(res.headers['cache-control'], 'no-store');
    const audit = await t.ctx.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'release.secret.reveal')
      .execute();
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.subject_id, 'api@1');
    assert.deepEqual(JSON.parse(audit[0]!.details!), { name: 'API_KEY' });
  });
});

void test('the secrets key file: created 0600 once, refused when readable by others or not a 32-byte key', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flt-vault-'));
  try {
    const vault = await SecretVault.open(dir);
    const place = { app: 'a', version: '1', name: 'K' };
    const ct = vault.encrypt(place, { value: 'v', nonce: secretNonce() });
    assert.equal((await SecretVault.open(dir)).decrypt(place, ct).value, 'v', 'the same key on restart');
    assert.throws(() => vault.decrypt({ ...place, name: 'L' }, ct), /cannot be decrypted/);
    await chmod(join(dir, 'secrets.key'), 0o644);
    await assert.rejects(
      SecretVault.open(dir),
      (e: unknown) => isFlotillaError(e) && e.code === 'FLT_KEY_FILE_UNSAFE_MODE',
    );
    await rm(join(dir, 'secrets.key'));
    await writeFile(join(dir, 'secrets.key'), 'short\n', { mode: 0o600 });
    await assert.rejects(
      SecretVault.open(dir),
      (e: unknown) => isFlotillaError(e) && e.code === 'FLT_KEY_FILE_INVALID',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('a push repeated before signing takes new commitments and drops the old values; once signed it is a conflict', async () => {
  const t = await createTestApp({ dialect: 'sqlite' });
  try {
    const tree = await treeOf({ 'api.js': 'retry' });
    await pushTree(t, tree);
    const first = { value: VALUE, nonce: secretNonce() };
    const second = { value: VALUE, nonce: secretNonce() };
    const create = (opening: typeof first) =>
      t.app.inject({
        method: 'POST',
        url: ReleaseRoutes.releases,
        headers: bearer(t.adminToken),
        payload: {
          app: 'api',
          version: '2',
          runtime: 'process',
          rootObject: tree.root,
          config,
          secrets: { API_KEY: secretCommitment('API_KEY', opening) },
        },
      });
    assert.equal((await create(first)).statusCode, 201);
    const url = routePath(ReleaseRoutes.secrets, { app: 'api', version: '2' });
    const put = (opening: typeof first) =>
      t.app.inject({
        method: 'PUT',
        url,
        headers: bearer(t.adminToken),
        payload: { secrets: { API_KEY: opening } },
      });
    assert.equal((await put(first)).statusCode, 200);
    // The first push stopped before signing; the retry draws a new nonce.
    const again = await create(second);
    assert.equal(again.statusCode, 200, again.body);
    assert.deepEqual(again.json<Release>().secrets, [
      { name: 'API_KEY', commitment: secretCommitment('API_KEY', second), stored: false },
    ]);
    assert.equal(errorCode(await put(first)), 'FLT_SECRET_MISMATCH');
    assert.equal((await put(second)).statusCode, 200);
    await t.ctx.db.updateTable('releases').set({ signed: 1 }).where('version', '=', '2').execute();
    assert.equal(errorCode(await create(first)), 'FLT_CONFLICT');
  } finally {
    await t.close();
  }
});
