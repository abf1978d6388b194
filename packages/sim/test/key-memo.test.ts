/** The simulator's memo of public keys: the same KeyObject for the same key, and every signature still checked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { generateEd25519, memorySigner, newRoot, signMetadata, verifySignedBy } from '@flotilla/node-kit';
import { memoizePublicKeys } from '../src/key-memo.js';

// Counts the checks that reach Node's crypto.verify (installed before the memo wraps it).
let checks = 0;
const realVerify = crypto.verify;

/** A root of `version` whose every role is `signer`'s key, signed by it. */
async function signedRoot(signer: ReturnType<typeof memorySigner>, version: number) {
  const roles = { keys: [signer.key], threshold: 1 };
  const md = newRoot({
    version,
    expires: new Date(Date.now() + 86_400_000),
    roles: { root: roles, targets: roles, snapshot: roles, timestamp: roles },
  });
  await signMetadata(md, [signer]);
  return md;
}
crypto.verify = ((...args: Parameters<typeof crypto.verify>) => {
  checks++;
  return (realVerify as (...a: unknown[]) => boolean)(...args);
}) as typeof crypto.verify;

void test('a memoized public key is reused by its bytes, and signatures are still verified', async () => {
  memoizePublicKeys();
  memoizePublicKeys(); // once per process, however often asked
  const der = (privatePem: string) =>
    crypto.createPublicKey(privatePem).export({ format: 'der', type: 'spki' });
  const one = generateEd25519();
  const two = generateEd25519();
  const a = crypto.createPublicKey({ key: der(one.privateKeyPem), format: 'der', type: 'spki' });
  const b = crypto.createPublicKey({ key: der(one.privateKeyPem), format: 'der', type: 'spki' });
  const c = crypto.createPublicKey({ key: der(two.privateKeyPem), format: 'der', type: 'spki' });
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.equal(a.asymmetricKeyType, 'ed25519');

  // tuf-js (through node-kit) checks every signature with the memoized keys.
  const signer = memorySigner(one.privateKeyPem);
  const other = memorySigner(two.privateKeyPem);
  const roles = { keys: [signer.key], threshold: 1 };
  const root = newRoot({
    version: 1,
    expires: new Date(Date.now() + 86_400_000),
    roles: { root: roles, targets: roles, snapshot: roles, timestamp: roles },
  });
  await signMetadata(root, [signer]);
  verifySignedBy(root, 'root', root);
  verifySignedBy(root, 'root', root);
  (root.signed as { version: number }).version = 2; // the signature no longer covers what is signed
  assert.throws(() => verifySignedBy(root, 'root', root), { code: 'FLT_TUF_SIGNATURE' });
  (root.signed as { version: number }).version = 1;
  const forged = newRoot({
    version: 1,
    expires: new Date(Date.now() + 86_400_000),
    roles: { root: roles, targets: roles, snapshot: roles, timestamp: roles },
  });
  await signMetadata(forged, [other]);
  assert.throws(() => verifySignedBy(root, 'root', forged), { code: 'FLT_TUF_SIGNATURE' });
});

void test('a check identical to one that succeeded (key, signature, bytes) is done once; other bytes and failures always', async () => {
  memoizePublicKeys();
  const image = memorySigner(generateEd25519().privateKeyPem);
  const director = memorySigner(generateEd25519().privateKeyPem);
  const imageRoot = await signedRoot(image, 1);
  const directorRoot = await signedRoot(director, 1);

  const counted = (fn: () => void) => {
    const before = checks;
    fn();
    return checks - before;
  };
  assert.equal(
    counted(() => verifySignedBy(imageRoot, 'root', imageRoot)),
    1,
    'the first check is real',
  );
  assert.equal(
    counted(() => verifySignedBy(imageRoot, 'root', imageRoot)),
    0,
    'the same bytes again: shared',
  );
  // The same bytes parsed again (another device's copy) share the check too.
  const copy = await signedRoot(image, 1);
  copy.signatures = imageRoot.signatures;
  assert.equal(
    counted(() => verifySignedBy(imageRoot, 'root', copy)),
    0,
  );
  // Different bytes under the same signature: checked, and refused.
  (copy.signed as { version: number }).version = 2;
  assert.equal(
    counted(() =>
      assert.throws(() => verifySignedBy(imageRoot, 'root', copy), { code: 'FLT_TUF_SIGNATURE' }),
    ),
    1,
  );
  assert.equal(
    counted(() =>
      assert.throws(() => verifySignedBy(imageRoot, 'root', copy), { code: 'FLT_TUF_SIGNATURE' }),
    ),
    1,
    'a failed check is never kept',
  );
  // Any key's checks (the director's root is the same for every device), each once.
  assert.equal(
    counted(() => verifySignedBy(directorRoot, 'root', directorRoot)),
    1,
  );
  assert.equal(
    counted(() => verifySignedBy(directorRoot, 'root', directorRoot)),
    0,
  );
  // The same signature and bytes checked with another key: real, and refused.
  const der = (privatePem: string) =>
    crypto.createPublicKey(privatePem).export({ format: 'der', type: 'spki' });
  const pairA = generateEd25519();
  const pairB = generateEd25519();
  const keyA = crypto.createPublicKey({ key: der(pairA.privateKeyPem), format: 'der', type: 'spki' });
  const keyB = crypto.createPublicKey({ key: der(pairB.privateKeyPem), format: 'der', type: 'spki' });
  const data = Buffer.from('signed bytes');
  const signature = crypto.sign(null, data, crypto.createPrivateKey(pairA.privateKeyPem));
  assert.equal(
    counted(() => assert.equal(crypto.verify(null, data, keyA, signature), true)),
    1,
  );
  assert.equal(
    counted(() => assert.equal(crypto.verify(null, data, { key: keyA }, signature), true)),
    0,
  );
  assert.equal(
    counted(() => assert.equal(crypto.verify(null, data, keyB, signature), false)),
    1,
  );
});

void test('many different checks push out the oldest, never the ones met again and again', async () => {
  memoizePublicKeys();
  const signer = memorySigner(generateEd25519().privateKeyPem);
  const make = (version: number) => signedRoot(signer, version);
  const often = await make(1);
  verifySignedBy(often, 'root', often);
  let real = 0;
  for (let v = 2; v < 700; v++) {
    // each device's own metadata, then the shared one again
    const own = await make(v);
    const before = checks;
    verifySignedBy(own, 'root', own);
    verifySignedBy(often, 'root', often);
    real += checks - before;
  }
  assert.equal(real, 698, 'one real check per device: its own');
  const first = await make(2);
  const before = checks;
  verifySignedBy(first, 'root', first);
  assert.equal(checks - before, 1, 'the oldest was pushed out');
});
