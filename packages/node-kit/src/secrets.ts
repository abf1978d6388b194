/**
 * Commitments and sealing of a release's secrets (docs/security.md "Secrets in runtime config"); the
 * schemas of what travels are in @flotilla/protocol (secrets.ts).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import { FlotillaError } from '@flotilla/protocol';
import type { SecretOpening } from '@flotilla/protocol';

/** A random 32-byte commitment nonce, hex. */
export function secretNonce(): string {
  return randomBytes(32).toString('hex');
}

/** The commitment of a secret: SHA-256 over a domain tag, the name, the nonce and the value (hex). */
export function secretCommitment(name: string, opening: SecretOpening): string {
  const nonce = Buffer.from(opening.nonce, 'hex');
  if (nonce.length !== 32) throw new FlotillaError('FLT_VALIDATION', 'a secret nonce is 32 bytes, hex');
  return createHash('sha256')
    .update(`flotilla-secret-v1\0${name}\0`, 'utf8')
    .update(nonce)
    .update(opening.value, 'utf8')
    .digest('hex');
}

/** Throws FLT_SECRET_MISMATCH unless the opening matches the signed commitment. */
export function checkSecretOpening(
  name: string,
  commitment: string,
  opening: SecretOpening,
  where: string,
): void {
  const ok =
    /^[0-9a-f]{64}$/.test(commitment) &&
    /^[0-9a-f]{64}$/.test(opening.nonce) &&
    timingSafeEqual(Buffer.from(secretCommitment(name, opening), 'hex'), Buffer.from(commitment, 'hex'));
  if (!ok)
    throw new FlotillaError(
      'FLT_SECRET_MISMATCH',
      `secret ${name} of ${where} does not match the commitment the offline key signed`,
      { details: { secret: name, where } },
    );
}

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/** Where a sealed secret belongs: the HPKE `info`, so a ciphertext opens only in its place. */
export interface SealContext {
  deviceId: string;
  /** The release's target path `<app>/<version>/<root>`. */
  targetPath: string;
  name: string;
}

function info(ctx: SealContext): Uint8Array {
  return new TextEncoder().encode(`flotilla-secret-v1\n${ctx.deviceId}\n${ctx.targetPath}\n${ctx.name}`);
}

/**
 * Seals a secret's opening to a device: HPKE to the X25519 form of its Ed25519 public key (raw,
 * base64url). Returns base64url(enc || ciphertext).
 */
export async function sealSecret(
  devicePublicKey: string,
  ctx: SealContext,
  opening: SecretOpening,
): Promise<string> {
  const edPublic = Buffer.from(devicePublicKey, 'base64url');
  if (edPublic.length !== 32)
    throw new FlotillaError('FLT_PUBLIC_KEY_INVALID', 'a device public key is 32 bytes of Ed25519');
  let xPublic: Uint8Array;
  try {
    xPublic = ed25519.utils.toMontgomery(edPublic);
  } catch (cause) {
    throw new FlotillaError('FLT_PUBLIC_KEY_INVALID', 'the device public key is not an Ed25519 point', {
      cause,
    });
  }
  // @hpke/core types keys as the DOM's CryptoKey, which is Node's webcrypto.CryptoKey here.
  const recipientPublicKey = (await suite.kem.importKey(
    'raw',
    toArrayBuffer(xPublic),
    true,
  )) as unknown as webcrypto.CryptoKey;
  const plaintext = Buffer.concat([Buffer.from(opening.nonce, 'hex'), Buffer.from(opening.value, 'utf8')]);
  const sealed = await suite.seal(
    { recipientPublicKey, info: toArrayBuffer(info(ctx)) },
    toArrayBuffer(plaintext),
  );
  const { enc, ct } = sealed;
  plaintext.fill(0);
  return Buffer.concat([Buffer.from(enc), Buffer.from(ct)]).toString('base64url');
}

/**
 * Opens a sealed secret with the device's Ed25519 private key seed (32 bytes). Throws
 * FLT_SECRET_SEALED_INVALID when it was not sealed to this device for this place, or was altered.
 */
export async function openSealedSecret(
  deviceSeed: Uint8Array,
  ctx: SealContext,
  sealed: string,
): Promise<SecretOpening> {
  const refuse = (why: string, cause?: unknown) =>
    new FlotillaError(
      'FLT_SECRET_SEALED_INVALID',
      `sealed secret ${ctx.name} of ${ctx.targetPath} cannot be opened by this device: ${why}`,
      { details: { secret: ctx.name, targetPath: ctx.targetPath }, ...(cause !== undefined && { cause }) },
    );
  const bytes = Buffer.from(sealed, 'base64url');
  if (bytes.length < 32 + 16 + 32 || bytes.toString('base64url') !== sealed) throw refuse('malformed');
  const xSecret = ed25519.utils.toMontgomerySecret(deviceSeed);
  try {
    const recipientKey = (await suite.kem.deserializePrivateKey(
      toArrayBuffer(xSecret),
    )) as unknown as webcrypto.CryptoKey;
    const opened = await suite.open(
      { recipientKey, enc: toArrayBuffer(bytes.subarray(0, 32)), info: toArrayBuffer(info(ctx)) },
      toArrayBuffer(bytes.subarray(32)),
    );
    const plain = Buffer.from(opened);
    const opening = {
      nonce: plain.subarray(0, 32).toString('hex'),
      value: plain.subarray(32).toString('utf8'),
    };
    plain.fill(0);
    return opening;
  } catch (cause) {
    throw refuse('decryption failed (altered, or sealed to another device or release)', cause);
  } finally {
    xSecret.fill(0);
  }
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
