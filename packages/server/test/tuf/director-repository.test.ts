import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMetadata, readReleaseTarget, serializeMetadata, verifyRootSuccessor } from '@flotilla/node-kit';
import { DAY_MS, initialised, release, signedTargets } from './fixture.js';

const DEVICE = 'dev-1';

void test('assigning a release writes director targets signed by the director key that copy the image target', async () => {
  const f = await initialised();
  const path = release('web', '1.0.0').path;
  const published = await f.director.assign(DEVICE, [{ path, rollout: 'r-canary' }]);
  assert.equal(published.targets, 1);
  const root = parseMetadata('root', (await f.director.readFile(DEVICE, 'root.json'))!);
  const timestamp = parseMetadata('timestamp', (await f.director.readFile(DEVICE, 'timestamp.json'))!);
  root.verifyDelegate('timestamp', timestamp);
  const snapshot = parseMetadata(
    'snapshot',
    (await f.director.readFile(DEVICE, `${timestamp.signed.snapshotMeta.version}.snapshot.json`))!,
  );
  root.verifyDelegate('snapshot', snapshot);
  const targets = parseMetadata('targets', (await f.director.readFile(DEVICE, '1.targets.json'))!);
  root.verifyDelegate('targets', targets);
  const entry = targets.signed.targets[path]!;
  const imageEntry = (await f.image.target(path))!;
  assert.equal(entry.length, imageEntry.length);
  assert.deepEqual(entry.hashes, imageEntry.hashes);
  const { custom } = readReleaseTarget(entry);
  assert.equal(custom.rollout, 'r-canary');
  assert.equal(custom.app, 'web');
  assert.equal(
    await f.director.readFile('other-device', 'timestamp.json'),
    undefined,
    'devices do not see each other',
  );
});

void test('a release absent from the image repository, two releases of one app and bad device ids are refused', async () => {
  const f = await initialised();
  await assert.rejects(f.director.assign(DEVICE, [{ path: release('web', '9.9.9', 'f').path }]), {
    code: 'FLT_TUF_TARGET_MISSING',
  });
  await f.image.submitTargets(
    (await signedTargets(f, await f.image.targets(), [release('web', '2.0.0', 'b')])).bytes,
  );
  await assert.rejects(
    f.director.assign(DEVICE, [
      { path: release('web', '1.0.0').path },
      { path: release('web', '2.0.0', 'b').path },
    ]),
    {
      code: 'FLT_VALIDATION',
    },
  );
  await assert.rejects(f.director.assign('../etc', []), { code: 'FLT_VALIDATION' });
  await assert.rejects(
    f.director.assign(DEVICE, [{ path: release('web', '1.0.0').path, rollout: 'bad rollout!' }]),
    { code: 'FLT_TUF_METADATA_INVALID' },
  );
  assert.equal(await f.director.targets(DEVICE), undefined, 'nothing was written');
});

void test('initDevice gives an empty, servable director repository and is idempotent', async () => {
  const f = await initialised();
  await f.director.initDevice(DEVICE);
  await f.director.initDevice(DEVICE);
  const targets = (await f.director.targets(DEVICE))!;
  assert.equal(targets.signed.version, 1);
  assert.deepEqual(targets.signed.targets, {});
  assert.ok(await f.director.readFile(DEVICE, 'timestamp.json'));
});

void test('the director re-signs device targets, snapshot, timestamp and its root before they expire', async () => {
  const f = await initialised();
  await f.director.assign(DEVICE, [{ path: release('web', '1.0.0').path }]);
  const root1 = await f.director.root();
  assert.equal(await f.director.refreshOnline(), 0);
  f.clock.advance(4 * DAY_MS); // device targets live 7 days
  assert.equal(await f.director.refreshOnline(), 1);
  const targets = (await f.director.targets(DEVICE))!;
  assert.equal(targets.signed.version, 2);
  assert.ok(targets.signed.targets[release('web', '1.0.0').path], 'the assignment is kept');
  f.clock.advance(200 * DAY_MS); // director root lives 365 days
  await f.director.refreshOnline();
  const root2 = parseMetadata('root', (await f.director.readFile(DEVICE, 'root.json'))!);
  assert.equal(root2.signed.version, 2);
  verifyRootSuccessor(root1, root2);
  assert.ok(await f.director.readFile(DEVICE, '1.root.json'));
  assert.ok(serializeMetadata(root2).length > 0);
});

void test('superseded timestamps are dropped and only the last few snapshots and device targets stay served', async () => {
  const f = await initialised();
  for (let i = 0; i < 6; i++)
    await f.director.assign(DEVICE, [{ path: release('web', '1.0.0').path, rollout: `r${i}` }]);
  const repo = `director/${DEVICE}`;
  assert.equal(await f.store.latestVersion(repo, 'targets'), 6);
  assert.equal(await f.store.get(repo, 'targets', 2), undefined);
  assert.ok(await f.store.get(repo, 'targets', 3));
  assert.equal(await f.store.get(repo, 'timestamp', 5), undefined);
  assert.ok(await f.store.get(repo, 'timestamp', 6));
  assert.equal(await f.store.get(repo, 'snapshot', 2), undefined);
  assert.ok(await f.store.get(repo, 'snapshot', 3));
  assert.ok(await f.director.readFile(DEVICE, '1.root.json'), 'roots are never dropped');
});
