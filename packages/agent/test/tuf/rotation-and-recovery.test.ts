import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DAY_MS, newSigner, trustedVersion, world } from './fixture.js';
import { provision, refused, verify } from './helpers.js';

void test('root rotation: a device trusting root v1 follows v2 (threshold 2) and v3, then refuses metadata signed only by retired keys', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  await verify(w);
  const [a] = w.image.keys.root;
  const [t1] = w.image.keys.targets;
  const [b1, b2, c, t2] = [newSigner(), newSigner(), newSigner(), newSigner()];
  const base = w.image.keys;

  // v2: two root keys with threshold 2, new targets key; signed by the old root key and both new ones.
  w.image.keys = { ...base, root: [b1, b2], targets: [t2] };
  await w.image.writeRoot([a!, b1, b2]);
  await w.image.publish(); // targets re-signed with t2
  // v3 signed by only one of the two v2 root keys: below v2's threshold.
  w.image.keys = { ...base, root: [c], targets: [t2] };
  await w.image.writeRoot([b1, c]);
  await refused(w, 'FLT_TUF_SIGNATURE', 'image');
  assert.equal(await trustedVersion(w, 'image', 'root'), 2, 'v2 was trusted, v3 refused');
  w.image.roots.pop();
  await w.image.writeRoot([b1, b2, c]);
  await w.image.publish();
  await verify(w);
  assert.equal(await trustedVersion(w, 'image', 'root'), 3);

  // Root v4 signed only by the retired root keys.
  w.image.keys = { ...base, root: [a!], targets: [t2] };
  await w.image.writeRoot([a!, b1, b2]);
  const details = await refused(w, 'FLT_TUF_SIGNATURE', 'image');
  assert.equal(details.step, 'root');
  assert.equal(await trustedVersion(w, 'image', 'root'), 3);
  w.image.roots.pop();
  w.server.files.delete('/image/4.root.json');

  // Targets signed only by the retired targets key.
  const stale = await w.image.writeTargets({ signers: [t1!] });
  await w.image.writeTimestamp(await w.image.writeSnapshot(stale));
  const targetsRefusal = await refused(w, 'FLT_TUF_SIGNATURE', 'image');
  assert.equal(targetsRefusal.step, 'targets');
});

void test('a device offline past the timestamp expiry is refused while metadata is stale and recovers once the server re-signs', async (t) => {
  const w = await world();
  t.after(() => w.close());
  await provision(w);
  await verify(w);
  const before = await trustedVersion(w, 'image', 'timestamp');
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 3 * DAY_MS });
  await refused(w, 'FLT_TUF_FREEZE');
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), before);
  await w.director.resignOnline();
  await w.image.resignOnline();
  const [release] = await verify(w);
  assert.equal(release?.path, w.web1.path);
  assert.equal(await trustedVersion(w, 'image', 'timestamp'), (before ?? 0) + 1);
});
