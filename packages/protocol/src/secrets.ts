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
 * The schemas live here; commitments and sealing (node:crypto) in @flotilla/node-kit.
 */
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
