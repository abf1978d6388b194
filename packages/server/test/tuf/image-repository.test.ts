import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  newRoot,
  nextRoot,
  parseMetadata,
  serializeMetadata,
  signMetadata,
  tufKeyFromPublicKey,
} from '@flotilla/node-kit';
import { DAY_MS, fixture, initialised, initialRoot, newSigner, release, signedTargets } from './fixture.js';

async function served(f: Awaited<ReturnType<typeof initialised>>, name: string): Promise<Buffer> {
  const bytes = await f.image.readFile(name);
  assert.ok(bytes, `${name} is served`);
  return bytes;
}

void test('keys init: root v1 naming the online keys is accepted; targets then publish snapshot and timestamp', async () => {
  const f = await initialised();
  const root = parseMetadata('root', await served(f, 'root.json'));
  const timestamp = parseMetadata('timestamp', await served(f, 'timestamp.json'));
  root.verifyDelegate('timestamp', timestamp);
  const snapshotVersion = timestamp.signed.snapshotMeta.version;
  const snapshotBytes = await served(f, `${snapshotVersion}.snapshot.json`);
  timestamp.signed.snapshotMeta.verify(snapshotBytes);
  const snapshot = parseMetadata('snapshot', snapshotBytes);
  root.verifyDelegate('snapshot', snapshot);
  const targetsMeta = snapshot.signed.meta['targets.json'];
  assert.equal(targetsMeta?.version, 1);
  const targetsBytes = await served(f, '1.targets.json');
  targetsMeta.verify(targetsBytes);
  root.verifyDelegate('targets', parseMetadata('targets', targetsBytes));
  assert.ok(await f.image.target(release('web', '1.0.0').path));
  assert.equal(
    await f.image.readFile('snapshot.json'),
    undefined,
    'only consistent-snapshot names are served',
  );
  assert.equal(await f.image.readFile('../1.root.json'), undefined);
});

void test('a root that does not give snapshot and timestamp to the online keys, or gives an online key an offline role, is refused', async () => {
  const f = fixture();
  const online = f.image.onlinePublicKeys();
  const stranger = newSigner();
  const expires = new Date(f.clock.now().getTime() + 365 * DAY_MS);
  const wrongSnapshot = newRoot({
    version: 1,
    expires,
    roles: {
      root: { keys: [f.rootKey.key], threshold: 1 },
      targets: { keys: [f.targetsKey.key], threshold: 1 },
      snapshot: { keys: [stranger.key], threshold: 1 },
      timestamp: { keys: [tufKeyFromPublicKey(online.timestamp)], threshold: 1 },
    },
  });
  await signMetadata(wrongSnapshot, [f.rootKey]);
  await assert.rejects(f.image.submitRoot(serializeMetadata(wrongSnapshot)), {
    code: 'FLT_TUF_KEY_MISMATCH',
  });
  const onlineTargets = newRoot({
    version: 1,
    expires,
    roles: {
      root: { keys: [f.rootKey.key], threshold: 1 },
      targets: { keys: [tufKeyFromPublicKey(online.snapshot)], threshold: 1 },
      snapshot: { keys: [tufKeyFromPublicKey(online.snapshot)], threshold: 1 },
      timestamp: { keys: [tufKeyFromPublicKey(online.timestamp)], threshold: 1 },
    },
  });
  await signMetadata(onlineTargets, [f.rootKey]);
  await assert.rejects(f.image.submitRoot(serializeMetadata(onlineTargets)), {
    code: 'FLT_TUF_KEY_MISMATCH',
  });
  assert.equal(await f.image.root(), undefined, 'nothing was stored');
});

void test('a root not signed by its own keys, a first root above v1, an expired root and garbage are refused', async () => {
  const f = fixture();
  const unsigned = await initialRoot(f);
  unsigned.signatures = {};
  await assert.rejects(f.image.submitRoot(serializeMetadata(unsigned)), { code: 'FLT_TUF_SIGNATURE' });
  const v2 = nextRoot(await initialRoot(f), {}, new Date(f.clock.now().getTime() + DAY_MS));
  await signMetadata(v2, [f.rootKey]);
  await assert.rejects(f.image.submitRoot(serializeMetadata(v2)), { code: 'FLT_TUF_ROLLBACK' });
  await assert.rejects(f.image.submitRoot(serializeMetadata(await initialRoot(f, -DAY_MS))), {
    code: 'FLT_TUF_FREEZE',
  });
  await assert.rejects(f.image.submitRoot(Buffer.from('{"signed":')), { code: 'FLT_TUF_METADATA_INVALID' });
  await assert.rejects(f.image.submitRoot(Buffer.alloc(600_000, 0x20)), { code: 'FLT_LIMIT_EXCEEDED' });
  assert.equal(await f.image.root(), undefined);
});

void test('targets signed by an online key, an older version, expired targets and malformed targets are refused', async () => {
  const f = await initialised();
  const current = await f.image.targets();
  const byOnline = await signedTargets(f, current, [release('web', '2.0.0', 'b')], {
    signers: [f.keys.snapshot, f.keys.timestamp, f.keys.director],
  });
  await assert.rejects(f.image.submitTargets(byOnline.bytes), { code: 'FLT_TUF_SIGNATURE' });
  const replay = await signedTargets(f, undefined, [release('web', '2.0.0', 'b')]);
  await assert.rejects(f.image.submitTargets(replay.bytes), { code: 'FLT_TUF_ROLLBACK' });
  const expired = await signedTargets(f, current, [release('web', '2.0.0', 'b')], { expiresInMs: -1000 });
  await assert.rejects(f.image.submitTargets(expired.bytes), { code: 'FLT_TUF_FREEZE' });
  const bad = await signedTargets(f, current, [release('web', '2.0.0', 'b')]);
  const json = bad.md.toJSON() as { signed: { targets: Record<string, { custom: { rootObject: string } }> } };
  Object.values(json.signed.targets)[0]!.custom.rootObject = 'c'.repeat(64);
  await assert.rejects(f.image.submitTargets(Buffer.from(JSON.stringify(json))), {
    code: 'FLT_TUF_METADATA_INVALID',
  });
  assert.equal((await f.image.targets())?.signed.version, 1, 'still targets v1');
  assert.equal(parseMetadata('timestamp', (await f.image.readFile('timestamp.json'))!).signed.version, 1);
});

void test('targets before any root are refused with FLT_TUF_NOT_INITIALIZED', async () => {
  const f = fixture();
  await assert.rejects(
    f.image.submitTargets((await signedTargets(f, undefined, [release('web', '1')])).bytes),
    { code: 'FLT_TUF_NOT_INITIALIZED' },
  );
});

void test('root and targets key rotation: v2 needs old and new root keys; then only the new targets key signs', async () => {
  const f = await initialised();
  const v1 = (await f.image.root())!;
  const newRootKey = newSigner();
  const newTargetsKey = newSigner();
  const v2 = nextRoot(
    v1,
    { root: { keys: [newRootKey.key], threshold: 1 }, targets: { keys: [newTargetsKey.key], threshold: 1 } },
    new Date(f.clock.now().getTime() + 365 * DAY_MS),
  );
  await signMetadata(v2, [newRootKey]);
  await assert.rejects(
    f.image.submitRoot(serializeMetadata(v2)),
    { code: 'FLT_TUF_SIGNATURE' },
    'new keys alone cannot rotate',
  );
  await signMetadata(v2, [f.rootKey]);
  assert.deepEqual(await f.image.submitRoot(serializeMetadata(v2)), { version: 2 });
  assert.ok(
    await f.image.readFile('1.root.json'),
    'older roots stay served for devices that follow the chain',
  );
  const current = await f.image.targets();
  await assert.rejects(
    f.image.submitTargets((await signedTargets(f, current, [release('web', '2', 'b')])).bytes),
    { code: 'FLT_TUF_SIGNATURE' },
  );
  const published = await f.image.submitTargets(
    (await signedTargets(f, current, [release('web', '2', 'b')], { signers: [newTargetsKey] })).bytes,
  );
  assert.equal(published.targets, 2);
});

void test('online metadata is re-signed by itself once less than half of its lifetime remains', async () => {
  const f = await initialised();
  const timestampOf = async () =>
    parseMetadata('timestamp', (await f.image.readFile('timestamp.json'))!).signed;
  const first = await timestampOf();
  assert.equal(await f.image.refreshOnline(), undefined, 'fresh metadata is left alone');
  f.clock.advance(0.6 * DAY_MS); // timestamp lives 1 day
  assert.deepEqual(await f.image.refreshOnline(), { timestamp: 2 });
  const second = await timestampOf();
  assert.equal(second.version, 2);
  assert.ok(Date.parse(second.expires) > Date.parse(first.expires));
  assert.equal(second.snapshotMeta.version, first.snapshotMeta.version);
  f.clock.advance(3 * DAY_MS); // snapshot lives 7 days: 3.6 days in, under half left
  const published = await f.image.refreshOnline();
  assert.deepEqual(published, { snapshot: 2, timestamp: 3 });
  const root = (await f.image.root())!;
  root.verifyDelegate('timestamp', parseMetadata('timestamp', (await f.image.readFile('timestamp.json'))!));
});

void test('offline metadata nearing expiry produces a warning with the renewal command', async () => {
  const f = fixture();
  await f.image.submitRoot(serializeMetadata(await initialRoot(f)));
  await f.image.submitTargets(
    (await signedTargets(f, undefined, [release('web', '1')], { expiresInMs: 40 * DAY_MS })).bytes,
  );
  assert.deepEqual(await f.image.expiryWarnings(), []);
  f.clock.advance(15 * DAY_MS);
  const [warning, ...rest] = await f.image.expiryWarnings();
  assert.equal(rest.length, 0);
  assert.equal(warning?.role, 'targets');
  assert.equal(warning?.command, 'flotilla keys renew --role targets');
  assert.equal(warning?.expired, false);
  f.clock.advance(30 * DAY_MS);
  assert.equal((await f.image.expiryWarnings())[0]?.expired, true);
});
