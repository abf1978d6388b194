/**
 * Opens a release's secrets on the device (docs/security.md "Secrets in runtime config"): each
 * value sealed to this device by the director is decrypted with the device's identity key and
 * accepted only if it matches the commitment the offline targets key signed. Values live only in
 * memory: they are handed to the runtime's environment and never written to state.db, logs or
 * reports (errors name the secret, never its value).
 */
import type { KeyObject } from 'node:crypto';
import { FlotillaError, secretReferences } from '@flotilla/protocol';
import { checkSecretOpening, deviceIdFromPublicKey, openSealedSecret } from '@flotilla/node-kit';
import type { ReleaseSpec } from '../model/release.js';

export class SecretOpener {
  readonly #seed: Buffer;
  readonly #deviceId: string;

  /** `privateKey`: the device's Ed25519 identity key; `publicKey`: its raw base64url public key. */
  constructor(privateKey: KeyObject, publicKey: string) {
    const jwk = privateKey.export({ format: 'jwk' });
    if (jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string')
      throw new FlotillaError('FLT_CONFIG_INVALID', 'the device identity is not an Ed25519 key');
    this.#seed = Buffer.from(jwk.d, 'base64url');
    this.#deviceId = deviceIdFromPublicKey(publicKey);
  }

  /**
   * The release's secret values by name, opened and checked. Throws FLT_SECRET_MISSING when the
   * config references a secret the release does not carry sealed to this device,
   * FLT_SECRET_SEALED_INVALID when a sealed value does not open (altered, or sealed to another
   * device or release), FLT_SECRET_MISMATCH when it opens to a value the offline key did not commit to.
   */
  async open(release: ReleaseSpec): Promise<Record<string, string>> {
    const secrets = release.secrets ?? {};
    const missing = secretReferences(release.config).filter(
      (name) => !Object.prototype.hasOwnProperty.call(secrets, name),
    );
    const unsealed = Object.entries(secrets)
      .filter(([, s]) => s.sealed === null)
      .map(([name]) => name);
    if (missing.length > 0 || unsealed.length > 0)
      throw new FlotillaError(
        'FLT_SECRET_MISSING',
        `release ${release.targetPath} references secrets that were not delivered to this device: ${[...missing, ...unsealed].join(', ')}`,
        { details: { targetPath: release.targetPath, missing: [...missing, ...unsealed] } },
      );
    const values: Record<string, string> = {};
    for (const [name, { commitment, sealed }] of Object.entries(secrets)) {
      const opening = await openSealedSecret(
        this.#seed,
        { deviceId: this.#deviceId, targetPath: release.targetPath, name },
        sealed!,
      );
      checkSecretOpening(name, commitment, opening, release.targetPath);
      values[name] = opening.value;
    }
    return values;
  }
}

/** A release's environment with every `{ "$secret": NAME }` replaced by its opened value. */
export function resolveEnv(
  env: Readonly<Record<string, string | { $secret: string }>>,
  values: Readonly<Record<string, string>>,
): Record<string, string> {
  const resolved: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (typeof value === 'string') {
      resolved[key] = value;
      continue;
    }
    const secret = values[value.$secret];
    if (secret === undefined)
      throw new FlotillaError(
        'FLT_SECRET_MISSING',
        `environment variable ${key} names secret ${value.$secret}, which was not opened`,
        {
          details: { env: key, secret: value.$secret },
        },
      );
    resolved[key] = secret;
  }
  return resolved;
}
