/**
 * Secrets in a release's runtime configuration (docs/security.md "Secrets in runtime config").
 *
 * The offline-signed release carries, per secret, only a hiding commitment
 * `SHA-256("flotilla-secret-v1" 0x00 name 0x00 nonce value)` with a random 32-byte nonce. The
 * server keeps value and nonce (encrypted at rest) and seals them to each assigned device with
 * HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to the X25519
 * key derived from the device's Ed25519 identity key. The device opens the sealed value and
 * accepts it only if it matches the signed commitment, so a server (or anyone holding its online
 * keys) can withhold a secret but never make a device run with a value the operator did not sign.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { FlotillaError } from './errors.js';

/** A secret's name: like an environment variable's. */
export const SECRET_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';
export const SecretName = Type.String({ pattern: SECRET_NAME_PATTERN, maxLength: 128 });
/** Largest secret value, in UTF-8 bytes (the same as an environment value). */
export const MAX_SECRET_BYTES = 32_768;
/** Most secrets in one release. */
export const MAX_SECRETS_PER_RELEASE = 64;
const NONCE_HEX = '^[0-9a-f]{64}$';

/** Where the config uses a secret: `{ "$secret": "NAME" }` in place of a string. */
export const SecretRef = Type.Object({ $secret: SecretName }, { additionalProperties: false });
export type SecretRef = Static<typeof SecretRef>;

/** Offline-signed commitments of a release's secrets, by name (SHA-256 hex). */
export const SecretCommitments = Type.Record(SecretName, Type.String({ pattern: '^[0-9a-f]{64}$' }), {
  maxProperties: MAX_SECRETS_PER_RELEASE,
});
export type SecretCommitments = Static<typeof SecretCommitments>;

/** base64url of HPKE `enc` (32 bytes) followed by the ciphertext of nonce (32 bytes) and value. */
const SEALED_MAX = Math.ceil(((32 + 32 + MAX_SECRET_BYTES + 16) * 4) / 3);
export const SealedSecrets = Type.Record(
  SecretName,
  Type.String({ pattern: '^[A-Za-z0-9_-]+$', maxLength: SEALED_MAX }),
  { maxProperties: MAX_SECRETS_PER_RELEASE },
);
export type SealedSecrets = Static<typeof SealedSecrets>;

/** A secret's value and the nonce of its commitment, as the operator's CLI sends them. */
export const SecretOpening = Type.Object(
  {
    value: Type.String({ maxLength: MAX_SECRET_BYTES }),
    nonce: Type.String({ pattern: NONCE_HEX, description: '32 random bytes, hex' }),
  },
  { additionalProperties: false },
);
export type SecretOpening = Static<typeof SecretOpening>;

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

/** Names of every `{ "$secret": NAME }` in a configuration, in order of appearance, once each. */
export function secretReferences(config: unknown): string[] {
  const names = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) walk(item);
    } else if (typeof value === 'object' && value !== null) {
      const record = value as Record<string, unknown>;
      if (Object.prototype.hasOwnProperty.call(record, '$secret') && typeof record.$secret === 'string')
        names.add(record.$secret);
      else for (const item of Object.values(record)) walk(item);
    }
  };
  walk(config);
  return [...names];
}

/**
 * Checks that a release's config references exactly the secrets it commits to; throws
 * FLT_VALIDATION naming what differs.
 */
export function checkSecretDeclarations(
  config: unknown,
  commitments: Readonly<Record<string, string>>,
): void {
  const used = secretReferences(config);
  const declared = Object.keys(commitments);
  const undeclared = used.filter((n) => !declared.includes(n));
  const unused = declared.filter((n) => !used.includes(n));
  const badNames = used.filter((n) => !new RegExp(SECRET_NAME_PATTERN).test(n));
  if (undeclared.length > 0 || unused.length > 0 || badNames.length > 0)
    throw new FlotillaError(
      'FLT_VALIDATION',
      `the config's secret references and the release's secrets differ` +
        (undeclared.length ? `; referenced without a commitment: ${undeclared.join(', ')}` : '') +
        (unused.length ? `; committed but never referenced: ${unused.join(', ')}` : '') +
        (badNames.length ? `; invalid names: ${badNames.join(', ')}` : ''),
      { details: { undeclared, unused, badNames } },
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
