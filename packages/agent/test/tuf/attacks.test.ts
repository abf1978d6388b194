/**
 * The TUF attack list (docs/security.md): each attack is refused with its own code, nothing is
 * returned for installation, and the trusted metadata on disk does not advance past what the spec
 * allows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inDays, newSigner, trustedVersion, world } from './fixture.js';
import type { World } from './fixture.js';
import { provision, refused, verify } from './helpers.js';

async function trustedWorld(t: { after(fn: () => Promise<void>): void }): Promise<World> {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  await verify(w);
  // A second honest publication, so that versions 1 are "older" for rollback attacks.
  await w.image.publish();
  await verify(w);
  assert.equal(await trustedVersion(w, 'image', 'targets'), 2);
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), 2);
  return w;
}

void test('rollback: an older timestamp is refused as FLT_TUF_ROLLBACK and the trusted timestamp stays', async (t) => {
  const w = await trustedWorld(t);
  const snapshot = { version: 2, bytes: w.image.get('2.snapshot.json') };
  await w.image.writeTimestamp(snapshot, { version: 1 });
  const details = await refused(w, 'FLT_TUF_ROLLBACK', 'image');
  assert.equal(details.step, 'timestamp');
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), 2);
});

void test('rollback: a new timestamp naming an older snapshot is refused as FLT_TUF_ROLLBACK', async (t) => {
  const w = await trustedWorld(t);
  await w.image.writeTimestamp({ version: 1, bytes: w.image.get('1.snapshot.json') });
  await refused(w, 'FLT_TUF_ROLLBACK', 'image');
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), 2);
});

void test('rollback: a new snapshot naming an older targets version is refused as FLT_TUF_ROLLBACK', async (t) => {
  const w = await trustedWorld(t);
  const snapshot = await w.image.writeSnapshot({ version: 1, bytes: w.image.get('1.targets.json') });
  await w.image.writeTimestamp(snapshot);
  const details = await refused(w, 'FLT_TUF_ROLLBACK', 'image');
  assert.equal(details.step, 'snapshot');
  assert.equal(await trustedVersion(w, 'image', 'snapshot'), 2);
  assert.equal(await trustedVersion(w, 'image', 'targets'), 2);
});

void test('freeze: an expired timestamp is refused as FLT_TUF_FREEZE and not persisted', async (t) => {
  const w = await trustedWorld(t);
  await w.image.resignOnline({ timestampExpires: inDays(-1) });
  const details = await refused(w, 'FLT_TUF_FREEZE', 'image');
  assert.equal(details.step, 'timestamp');
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), 2);
});

void test('freeze: expired targets are refused as FLT_TUF_FREEZE', async (t) => {
  const w = await trustedWorld(t);
  const targets = await w.image.writeTargets({ expires: inDays(-1) });
  await w.image.writeTimestamp(await w.image.writeSnapshot(targets));
  await refused(w, 'FLT_TUF_FREEZE', 'image');
  assert.equal(await trustedVersion(w, 'image', 'targets'), 2);
});

void test('mix-and-match: a snapshot naming a targets version other than the file served is refused as FLT_TUF_MIX_AND_MATCH', async (t) => {
  const w = await trustedWorld(t);
  // Version 3 is announced, but the bytes served as 3.targets.json are targets v2.
  const old = w.image.get('2.targets.json');
  w.image.put('3.targets.json', old);
  await w.image.writeTimestamp(await w.image.writeSnapshot({ version: 3, bytes: old }));
  const details = await refused(w, 'FLT_TUF_MIX_AND_MATCH', 'image');
  assert.equal(details.step, 'targets');
  assert.equal(await trustedVersion(w, 'image', 'targets'), 2);
});

void test('mix-and-match: a snapshot whose version differs from the one the timestamp names is refused as FLT_TUF_MIX_AND_MATCH', async (t) => {
  const w = await trustedWorld(t);
  const targets = { version: 2, bytes: w.image.get('2.targets.json') };
  const real = await w.image.writeSnapshot(targets, { version: 7 });
  w.image.put('3.snapshot.json', real.bytes);
  await w.image.writeTimestamp({ version: 3, bytes: real.bytes });
  await refused(w, 'FLT_TUF_MIX_AND_MATCH', 'image');
});

void test('arbitrary metadata: targets altered on the server after signing are refused as FLT_TUF_HASH', async (t) => {
  const w = await trustedWorld(t);
  await w.image.publish();
  const bytes = w.image.get('3.targets.json');
  w.image.put('3.targets.json', Buffer.from(bytes.toString('utf8').replace('./app.sh', './bad.sh')));
  await refused(w, 'FLT_TUF_HASH', 'image');
  assert.equal(await trustedVersion(w, 'image', 'targets'), 2);
});

void test('signature: a timestamp signed by an unknown key is refused as FLT_TUF_SIGNATURE', async (t) => {
  const w = await trustedWorld(t);
  await w.image.writeTimestamp(
    { version: 2, bytes: w.image.get('2.snapshot.json') },
    { signers: [newSigner()] },
  );
  await refused(w, 'FLT_TUF_SIGNATURE', 'image');
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), 2);
});

void test('signature: director targets signed by a key other than the director key are refused', async (t) => {
  const w = await trustedWorld(t);
  const forged = await w.director.writeTargets({ signers: [w.online.snapshot] });
  await w.director.writeTimestamp(await w.director.writeSnapshot(forged));
  await refused(w, 'FLT_TUF_SIGNATURE', 'director');
  assert.equal(await trustedVersion(w, 'director', 'targets'), 1);
});

void test('endless data: a timestamp that never ends is cut off as FLT_TUF_LENGTH', async (t) => {
  const w = await trustedWorld(t);
  w.server.endless.add('/image/timestamp.json');
  await refused(w, 'FLT_TUF_LENGTH', 'image');
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), 2);
});

void test('endless data: targets longer than the snapshot declares are cut off as FLT_TUF_LENGTH', async (t) => {
  const w = await trustedWorld(t);
  await w.image.publish();
  w.server.endless.add('/image/3.targets.json');
  const details = await refused(w, 'FLT_TUF_LENGTH', 'image');
  assert.equal(details.step, 'targets');
});

void test('metadata the server cannot serve is reported as FLT_TUF_FETCH with the HTTP status', async (t) => {
  const w = await trustedWorld(t);
  w.server.files.delete('/director/timestamp.json');
  const details = await refused(w, 'FLT_TUF_FETCH', 'director');
  assert.equal(details.status, 404);
});

void test('garbage metadata is refused as FLT_TUF_METADATA_INVALID', async (t) => {
  const w = await trustedWorld(t);
  w.image.put('timestamp.json', Buffer.from('{"signed":'));
  await refused(w, 'FLT_TUF_METADATA_INVALID', 'image');
  w.image.put('timestamp.json', Buffer.from('{"signed":{"_type":"snapshot"},"signatures":[]}'));
  await refused(w, 'FLT_TUF_METADATA_INVALID', 'image');
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), 2);
});
