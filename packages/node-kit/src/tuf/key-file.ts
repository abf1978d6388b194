/**
 * Offline key files (root and targets keys held by the CLI; the server's online keys too). A file
 * holds one ed25519 private key, plain or encrypted with a passphrase (scrypt → AES-256-GCM, the
 * public key and role bound as additional authenticated data). Files are written mode 0600 via a
 * temporary file and a rename, never replace an existing key, and are refused on load when group
 * or others can read them.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../fs/atomic.js';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { publicKeyOfPrivatePem } from '../crypto.js';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { memorySigner, tufKeyFromPublicKey } from './keys.js';
import type { Signer } from './keys.js';

const FORMAT = 'flotilla-key/1';
const MAX_KEY_FILE_BYTES = 64 * 1024;
// scrypt cost: N=2^15, r=8 needs 32 MiB; about 0.1 s per attempt on a laptop.
const SCRYPT = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

const Encryption = Type.Object(
  {
    kdf: Type.Literal('scrypt'),
    N: Type.Integer({ minimum: 16384, maximum: 1048576 }),
    r: Type.Integer({ minimum: 8, maximum: 32 }),
    p: Type.Integer({ minimum: 1, maximum: 16 }),
    salt: Type.String({ minLength: 16, maxLength: 128 }),
    cipher: Type.Literal('aes-256-gcm'),
    iv: Type.String({ minLength: 16, maxLength: 32 }),
    tag: Type.String({ minLength: 16, maxLength: 32 }),
  },
  { additionalProperties: false },
);

const KeyFileSchema = Type.Object(
  {
    format: Type.Literal(FORMAT),
    role: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9_-]+$' }),
    keyId: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    publicKey: Type.String({ minLength: 43, maxLength: 43 }),
    encryption: Type.Union([Type.Null(), Encryption]),
    privateKey: Type.String({ minLength: 1, maxLength: 16384 }),
  },
  { additionalProperties: false },
);
type KeyFileJson = Static<typeof KeyFileSchema>;

/** A key loaded from a key file. */
export interface LoadedKey {
  role: string;
  keyId: string;
  /** Raw ed25519 public key, base64url. */
  publicKey: string;
  privateKeyPem: string;
  signer: Signer;
}

function deriveKey(
  passphrase: string,
  salt: Buffer,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase, salt, 32, { ...params, maxmem: SCRYPT.maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function aad(role: string, publicKey: string): Buffer {
  return Buffer.from(`${FORMAT}\n${role}\n${publicKey}`, 'utf8');
}

/**
 * Writes a key file at `path` (mode 0600, parent directory created 0700). Encrypted when
 * `passphrase` is given. Throws FLT_CONFLICT if a file already exists there: keys are never replaced.
 */
export async function writeKeyFile(
  path: string,
  key: { role: string; privateKeyPem: string },
  opts: { passphrase?: string } = {},
): Promise<LoadedKey> {
  const publicKey = publicKeyOfPrivatePem(key.privateKeyPem);
  const keyId = tufKeyFromPublicKey(publicKey).keyID;
  let body: KeyFileJson;
  if (opts.passphrase !== undefined) {
    if (opts.passphrase.length === 0)
      throw new FlotillaError('FLT_VALIDATION', 'passphrase must not be empty');
    const salt = randomBytes(16);
    const iv = randomBytes(12);
    const derived = await deriveKey(opts.passphrase, salt, SCRYPT);
    const cipher = createCipheriv('aes-256-gcm', derived, iv);
    cipher.setAAD(aad(key.role, publicKey));
    const ciphertext = Buffer.concat([cipher.update(key.privateKeyPem, 'utf8'), cipher.final()]);
    body = {
      format: FORMAT,
      role: key.role,
      keyId,
      publicKey,
      encryption: {
        kdf: 'scrypt',
        N: SCRYPT.N,
        r: SCRYPT.r,
        p: SCRYPT.p,
        salt: salt.toString('base64'),
        cipher: 'aes-256-gcm',
        iv: iv.toString('base64'),
        tag: cipher.getAuthTag().toString('base64'),
      },
      privateKey: ciphertext.toString('base64'),
    };
  } else {
    body = {
      format: FORMAT,
      role: key.role,
      keyId,
      publicKey,
      encryption: null,
      privateKey: key.privateKeyPem,
    };
  }
  if (!Value.Check(KeyFileSchema, body))
    throw new FlotillaError('FLT_VALIDATION', `key role must match ^[a-z0-9_-]+$, got ${key.role}`);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeNoClobber(path, `${JSON.stringify(body, null, 2)}\n`);
  return {
    role: key.role,
    keyId,
    publicKey,
    privateKeyPem: key.privateKeyPem,
    signer: memorySigner(key.privateKeyPem),
  };
}

/** Written atomically and durably; never replaces a file (FLT_CONFLICT when one is there). */
async function writeNoClobber(path: string, text: string): Promise<void> {
  let result: 'written' | 'exists';
  try {
    result = await writeFileAtomic(path, text, { mode: 0o600, existing: 'keep' });
  } catch (cause) {
    throw new FlotillaError('FLT_IO', `cannot write key file ${path}`, { cause });
  }
  if (result === 'exists')
    throw new FlotillaError(
      'FLT_CONFLICT',
      `a key file already exists at ${path}; keys are never overwritten`,
    );
}

/**
 * Loads a key file. Refuses files readable by group or others (FLT_KEY_FILE_UNSAFE_MODE), asks for
 * a passphrase when the key is encrypted (FLT_KEY_PASSPHRASE_REQUIRED), refuses a wrong passphrase or
 * tampered file (FLT_KEY_PASSPHRASE_WRONG), and anything malformed (FLT_KEY_FILE_INVALID).
 */
export async function readKeyFile(path: string, opts: { passphrase?: string } = {}): Promise<LoadedKey> {
  let text: string;
  try {
    const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new FlotillaError('FLT_KEY_FILE_INVALID', `${path} is not a regular file`);
      if ((st.mode & 0o077) !== 0) {
        throw new FlotillaError(
          'FLT_KEY_FILE_UNSAFE_MODE',
          `${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`,
          {
            details: { path, mode: (st.mode & 0o777).toString(8) },
          },
        );
      }
      if (st.size > MAX_KEY_FILE_BYTES)
        throw new FlotillaError('FLT_KEY_FILE_INVALID', `${path} is larger than a key file can be`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (cause) {
    if (isFlotillaError(cause)) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FlotillaError('FLT_NOT_FOUND', `no key file at ${path}`, { cause });
    if (code === 'ELOOP')
      throw new FlotillaError(
        'FLT_KEY_FILE_INVALID',
        `${path} is a symbolic link; key files must be regular files`,
        { cause },
      );
    throw new FlotillaError('FLT_IO', `cannot read key file ${path}`, { cause });
  }
  const body = parseKeyFile(path, text);
  const privateKeyPem =
    body.encryption === null ? body.privateKey : await decrypt(path, body, body.encryption, opts.passphrase);
  let derivedPublic: string;
  try {
    derivedPublic = publicKeyOfPrivatePem(privateKeyPem);
  } catch (cause) {
    throw new FlotillaError('FLT_KEY_FILE_INVALID', `${path} does not hold an ed25519 private key`, {
      cause,
    });
  }
  if (derivedPublic !== body.publicKey || tufKeyFromPublicKey(derivedPublic).keyID !== body.keyId) {
    throw new FlotillaError(
      'FLT_KEY_FILE_INVALID',
      `${path}: the private key does not match the recorded public key`,
    );
  }
  return {
    role: body.role,
    keyId: body.keyId,
    publicKey: body.publicKey,
    privateKeyPem,
    signer: memorySigner(privateKeyPem),
  };
}

function parseKeyFile(path: string, text: string): KeyFileJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new FlotillaError('FLT_KEY_FILE_INVALID', `${path} is not JSON`, { cause });
  }
  if (!Value.Check(KeyFileSchema, json)) {
    const first = [...Value.Errors(KeyFileSchema, json)][0];
    throw new FlotillaError(
      'FLT_KEY_FILE_INVALID',
      `${path} is not a ${FORMAT} key file (${first ? `${first.path}: ${first.message}` : 'invalid'})`,
    );
  }
  return json;
}

async function decrypt(
  path: string,
  body: KeyFileJson,
  enc: Static<typeof Encryption>,
  passphrase: string | undefined,
): Promise<string> {
  if (passphrase === undefined || passphrase.length === 0) {
    throw new FlotillaError('FLT_KEY_PASSPHRASE_REQUIRED', `${path} is encrypted; a passphrase is required`);
  }
  const derived = await deriveKey(passphrase, Buffer.from(enc.salt, 'base64'), enc);
  try {
    const decipher = createDecipheriv('aes-256-gcm', derived, Buffer.from(enc.iv, 'base64'));
    decipher.setAAD(aad(body.role, body.publicKey));
    decipher.setAuthTag(Buffer.from(enc.tag, 'base64'));
    return Buffer.concat([
      decipher.update(Buffer.from(body.privateKey, 'base64')),
      decipher.final(),
    ]).toString('utf8');
  } catch (cause) {
    throw new FlotillaError(
      'FLT_KEY_PASSPHRASE_WRONG',
      `wrong passphrase for ${path} (or the file was altered)`,
      { cause },
    );
  }
}
