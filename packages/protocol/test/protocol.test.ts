import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FlotillaError,
  deviceIdFromPublicKey,
  enrollmentMessage,
  errorFromEnvelope,
  generateEd25519,
  importPublicKey,
  parseDurationMs,
  formatDurationMs,
  publicKeyOfPrivatePem,
  signMessage,
  verifyMessage,
} from '@flotilla/protocol';

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

void test('durations', () => {
  assert.equal(parseDurationMs('7d'), 7 * 86_400_000);
  assert.equal(parseDurationMs('30s'), 30_000);
  assert.equal(parseDurationMs('250ms'), 250);
  assert.equal(parseDurationMs('1500'), 1500);
  assert.throws(() => parseDurationMs('soon'), /invalid duration/);
  assert.throws(() => parseDurationMs('-5s'));
  assert.equal(formatDurationMs(5_400_000), '1h30m');
});

void test('error envelopes round trip', () => {
  const e = new FlotillaError('FLT_REGKEY_REVOKED', 'registration key revoked');
  assert.equal(e.statusCode, 403);
  const back = errorFromEnvelope(403, JSON.parse(JSON.stringify(e.toJSON())));
  assert.equal(back.code, 'FLT_REGKEY_REVOKED');
  assert.equal(errorFromEnvelope(502, 'bad gateway').code, 'FLT_INTERNAL');
});
