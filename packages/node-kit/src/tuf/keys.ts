/**
 * TUF key material for Flotilla's ed25519 keys (crypto.ts): the public key in TUF's key format
 * (`keytype`/`scheme` "ed25519", `keyval.public` as hex) and signers that sign canonical metadata bytes.
 */
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key } from '@tufjs/models';
import { importPublicKey, publicKeyOfPrivatePem, sha256Hex } from '../crypto.js';
import { FlotillaError } from '@flotilla/protocol';

/**
 * A TUF key for a raw base64url ed25519 public key. The key id is the SHA-256 of the canonical JSON
 * of the key object, as the TUF specification ("keyid") defines it.
 */
export function tufKeyFromPublicKey(publicKey: string): Key {
  importPublicKey(publicKey); // throws FLT_PUBLIC_KEY_INVALID on anything but 32 raw bytes
  const keyVal = { public: Buffer.from(publicKey, 'base64url').toString('hex') };
  const body = { keytype: 'ed25519', scheme: 'ed25519', keyval: keyVal };
  return new Key({ keyID: sha256Hex(canonicalize(body)), keyType: 'ed25519', scheme: 'ed25519', keyVal });
}

/** The raw base64url ed25519 public key of a TUF key; throws FLT_PUBLIC_KEY_INVALID for other key types. */
export function publicKeyOfTufKey(key: Key): string {
  const hex = key.keyVal.public;
  if (
    key.keyType !== 'ed25519' ||
    key.scheme !== 'ed25519' ||
    hex === undefined ||
    !/^[0-9a-f]{64}$/.test(hex)
  ) {
    throw new FlotillaError('FLT_PUBLIC_KEY_INVALID', `key ${key.keyID} is not an ed25519 key in hex`);
  }
  return Buffer.from(hex, 'hex').toString('base64url');
}

/**
 * Something that signs TUF metadata: the private key may be in memory or behind a callback (an
 * agent, an HSM, a prompt). `sign` receives the canonical bytes of the `signed` object and returns
 * the 64-byte ed25519 signature.
 */
export interface Signer {
  readonly key: Key;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** A signer holding a PKCS#8 PEM ed25519 private key (as `generateEd25519` produces) in memory. */
export function memorySigner(privateKeyPem: string): Signer {
  let keyObject: KeyObject;
  let publicKey: string;
  try {
    keyObject = createPrivateKey(privateKeyPem);
    publicKey = publicKeyOfPrivatePem(privateKeyPem);
  } catch (cause) {
    throw new FlotillaError('FLT_KEY_FILE_INVALID', 'private key is not a PEM ed25519 key', { cause });
  }
  const key = tufKeyFromPublicKey(publicKey);
  return {
    key,
    sign: (data) => Promise.resolve(new Uint8Array(cryptoSign(null, data, keyObject))),
  };
}
