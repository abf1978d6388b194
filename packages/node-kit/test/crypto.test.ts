import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlotillaError } from '@flotilla/protocol';
import {
  deviceIdFromPublicKey,
  enrollmentMessage,
  generateEd25519,
  importPublicKey,
  publicKeyOfPrivatePem,
  signMessage,
  verifyMessage,
} from '../src/index.js';

void test('ed25519 sign/verify round trip and refusals', () => {
  const kp = generateEd25519();
  assert.equal(Buffer.from(kp.publicKey, 'base64url').length, 32);
  assert.equal(publicKeyOfPrivatePem(kp.privateKeyPem), kp.publicKey);
  const msg = enrollmentMessage('n'.repeat(32), kp.publicKey, 'flt_rk_secret');
  const sig = signMessage(kp.privateKeyPem, msg);
  assert.ok(verifyMessage(kp.publicKey, msg, sig));
  assert.equal(verifyMessage(kp.publicKey, msg + 'x', sig), false);
  assert.equal(verifyMessage(generateEd25519().publicKey, msg, sig), false);
  assert.equal(verifyMessage(kp.publicKey, msg, 'garbage'), false);
  assert.equal(verifyMessage('not-a-key', msg, sig), false);
  assert.throws(
    () => importPublicKey('AAAA'),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_PUBLIC_KEY_INVALID',
  );
  assert.match(deviceIdFromPublicKey(kp.publicKey), /^[0-9a-f]{32}$/);
});
