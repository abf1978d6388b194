/** The simulator's memo of public keys: the same KeyObject for the same key, and every signature still checked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { generateEd25519, memorySigner, newRoot, signMetadata, verifySignedBy } from '@flotilla/node-kit';
import { memoizePublicKeys } from '../src/key-memo.js';

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
