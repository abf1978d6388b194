import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { TargetFile } from '@tufjs/models';
import {
  generateEd25519,
  memorySigner,
  newRoot,
  nextRoot,
  nextTargets,
  parseMetadata,
  readReleaseTarget,
  releaseTarget,
  serializeMetadata,
  signMetadata,
  tufKeyFromPublicKey,
  verifyRootSuccessor,
  verifySignedBy,
} from '../../src/index.js';
import type { Signer } from '../../src/index.js';
import { parseReleaseTargetPath, releaseTargetPath } from '@flotilla/protocol';

const DAY = 86_400_000;
const ROOT_OBJECT = 'a'.repeat(64);

function signer(): Signer {
  return memorySigner(generateEd25519().privateKeyPem);
}

function rootWith(rootSigners: Signer[], threshold: number, other: Signer) {
  const one = { keys: [other.key], threshold: 1 };
  return newRoot({
    version: 1,
    expires: new Date(Date.now() + 365 * DAY),
    roles: {
      root: { keys: rootSigners.map((s) => s.key), threshold },
      targets: one,
      snapshot: one,
      timestamp: one,
    },
  });
}

void test('key ids are the SHA-256 of the canonical JSON key object', () => {
  const { publicKey } = generateEd25519();
  const key = tufKeyFromPublicKey(publicKey);
  const hex = Buffer.from(publicKey, 'base64url').toString('hex');
  const expected = createHash('sha256')
    .update(canonicalize({ keytype: 'ed25519', scheme: 'ed25519', keyval: { public: hex } }))
    .digest('hex');
  assert.equal(key.keyID, expected);
  assert.throws(() => tufKeyFromPublicKey('short'), { code: 'FLT_PUBLIC_KEY_INVALID' });
});

void test('a root threshold larger than its keys is refused', () => {
  const s = signer();
  assert.throws(() => rootWith([s], 2, s), { code: 'FLT_VALIDATION' });
});

void test('a threshold root needs that many distinct signatures', async () => {
  const [a, b, c] = [signer(), signer(), signer()];
  const root = rootWith([a, b, c], 2, a);
  await signMetadata(root, [a]);
  assert.throws(() => verifySignedBy(root, 'root', root), { code: 'FLT_TUF_SIGNATURE' });
  await signMetadata(root, [b]);
  verifySignedBy(root, 'root', root);
  const reparsed = parseMetadata('root', serializeMetadata(root));
  verifySignedBy(reparsed, 'root', reparsed);
});

void test('root rotation: v2 is accepted only when signed by old and new root keys', async () => {
  const [old, fresh, other] = [signer(), signer(), signer()];
  const v1 = rootWith([old], 1, other);
  await signMetadata(v1, [old]);
  const v2 = nextRoot(v1, { root: { keys: [fresh.key], threshold: 1 } }, new Date(Date.now() + 365 * DAY));
  assert.equal(v2.signed.version, 2);
  await signMetadata(v2, [fresh]);
  assert.throws(() => verifyRootSuccessor(v1, v2), { code: 'FLT_TUF_SIGNATURE' });
  await signMetadata(v2, [old]);
  verifyRootSuccessor(v1, v2);
  assert.deepEqual(v2.signed.roles.targets?.keyIDs, [other.key.keyID]);
  assert.throws(() => verifyRootSuccessor(v2, v1), { code: 'FLT_TUF_ROLLBACK' });
});

void test('release targets follow <app>/<version>/<rootObjectId> and carry checked custom fields', () => {
  const target = releaseTarget(
    { app: 'web', version: '1.2.0', runtime: 'docker', rootObject: ROOT_OBJECT, config: { port: 80 } },
    321,
  );
  assert.equal(target.path, `web/1.2.0/${ROOT_OBJECT}`);
  assert.deepEqual(target.hashes, { sha256: ROOT_OBJECT });
  const read = readReleaseTarget(target);
  assert.equal(read.custom.runtime, 'docker');
  assert.equal(read.length, 321);
  assert.deepEqual(parseReleaseTargetPath(target.path), {
    app: 'web',
    version: '1.2.0',
    rootObject: ROOT_OBJECT,
  });
  assert.throws(() => releaseTargetPath('../etc', '1', ROOT_OBJECT), { code: 'FLT_VALIDATION' });
  assert.throws(() => releaseTargetPath('web', '1/2', ROOT_OBJECT), { code: 'FLT_VALIDATION' });
  assert.throws(() => parseReleaseTargetPath('web/1'), { code: 'FLT_TUF_METADATA_INVALID' });
  assert.throws(
    () => releaseTarget({ app: 'web', version: '1', runtime: 'vm' as 'files', rootObject: ROOT_OBJECT }, 1),
    {
      code: 'FLT_TUF_METADATA_INVALID',
    },
  );
});

void test('a release target whose sha256 is not its root object is refused', () => {
  // The agent installs custom.rootObject but verifies the bytes it fetches against the sha256: the
  // two must be one id, or a target could name one tree and have the device check another.
  const other = 'b'.repeat(64);
  const custom = { app: 'web', version: '1', runtime: 'files' as const, rootObject: ROOT_OBJECT };
  const target = new TargetFile({
    path: releaseTargetPath('web', '1', ROOT_OBJECT),
    length: 10,
    hashes: { sha256: other },
    unrecognizedFields: { custom: custom as never },
  });
  assert.throws(() => readReleaseTarget(target), { code: 'FLT_TUF_METADATA_INVALID' });
  // The same target with the root object's own id is accepted.
  const honest = new TargetFile({
    path: target.path,
    length: 10,
    hashes: { sha256: ROOT_OBJECT },
    unrecognizedFields: { custom: custom as never },
  });
  assert.equal(readReleaseTarget(honest).sha256, ROOT_OBJECT);
});

void test('nextTargets bumps the version and replaces a target of the same path', () => {
  const expires = new Date(Date.now() + DAY);
  const a = releaseTarget({ app: 'web', version: '1', runtime: 'files', rootObject: ROOT_OBJECT }, 10);
  const b = releaseTarget(
    { app: 'web', version: '1', runtime: 'files', rootObject: ROOT_OBJECT, rollout: 'r1' },
    10,
  );
  const v1 = nextTargets(undefined, [a], expires);
  const v2 = nextTargets(v1, [b], expires);
  assert.equal(v1.signed.version, 1);
  assert.equal(v2.signed.version, 2);
  assert.equal(Object.keys(v2.signed.targets).length, 1);
  assert.equal(nextTargets(v2, [], expires, [a.path]).signed.targets[a.path], undefined);
});

void test('malformed metadata is refused with FLT_TUF_METADATA_INVALID', () => {
  assert.throws(() => parseMetadata('root', Buffer.from('{')), { code: 'FLT_TUF_METADATA_INVALID' });
  assert.throws(() => parseMetadata('root', Buffer.from('[]')), { code: 'FLT_TUF_METADATA_INVALID' });
  assert.throws(
    () => parseMetadata('timestamp', Buffer.from('{"signed":{"_type":"root"},"signatures":[]}')),
    { code: 'FLT_TUF_METADATA_INVALID' },
  );
  assert.throws(
    () =>
      parseMetadata('targets', Buffer.from('{"signed":{"_type":"targets","version":"x"},"signatures":[]}')),
    {
      code: 'FLT_TUF_METADATA_INVALID',
    },
  );
});
