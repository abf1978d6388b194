/**
 * The server's secrets key: 32 random bytes in `<dataDir>/secrets.key` (base64, mode 0600, created
 * once and never overwritten, like the online TUF keys), used to encrypt release secrets at rest
 * with AES-256-GCM. The additional authenticated data names the release and the secret, so a
 * stored ciphertext cannot be moved to another secret or release.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { createFileExclusive } from '@flotilla/node-kit';
import type { SecretOpening } from '@flotilla/protocol';

export const SECRETS_KEY_FILE = 'secrets.key';

export interface SecretPlace {
  app: string;
  version: string;
  name: string;
}

export class SecretVault {
  private constructor(private readonly key: Buffer) {}

  /** A vault over a key held in memory only (tests). */
  static inMemory(key: Buffer = randomBytes(32)): SecretVault {
    return new SecretVault(key);
  }

  /** Loads `<dataDir>/secrets.key`, creating it (mode 0600) on first start. */
  static async open(dataDir: string): Promise<SecretVault> {
    const path = join(dataDir, SECRETS_KEY_FILE);
    const created = await createFileExclusive(
      dataDir,
      SECRETS_KEY_FILE,
      Buffer.from(`${randomBytes(32).toString('base64')}\n`),
      0o600,
    );
    const st = await lstat(path).catch((cause: unknown) => {
      throw new FlotillaError('FLT_IO', `cannot read the secrets key ${path}`, { cause });
    });
    if (!st.isFile())
      throw new FlotillaError('FLT_KEY_FILE_INVALID', `${path} is not a regular file`, { details: { path } });
    if ((st.mode & 0o077) !== 0)
      throw new FlotillaError(
        'FLT_KEY_FILE_UNSAFE_MODE',
        `${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`,
        { details: { path, mode: (st.mode & 0o777).toString(8) } },
      );
    const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
    if (key.length !== 32)
      throw new FlotillaError(
        'FLT_KEY_FILE_INVALID',
        `${path} does not hold a 32-byte key in base64${created === 'created' ? '' : '; restore it from a backup (stored secrets cannot be read without it)'}`,
        { details: { path } },
      );
    return new SecretVault(key);
  }

  encrypt(place: SecretPlace, opening: SecretOpening): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(aad(place));
    const ct = Buffer.concat([cipher.update(JSON.stringify(opening), 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
  }

  /** Throws FLT_SECRET_SEALED_INVALID when the ciphertext was altered or made with another key. */
  decrypt(place: SecretPlace, ciphertext: string): SecretOpening {
    try {
      const bytes = Buffer.from(ciphertext, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', this.key, bytes.subarray(0, 12));
      decipher.setAAD(aad(place));
      decipher.setAuthTag(bytes.subarray(12, 28));
      const plain = Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString('utf8');
      const parsed = JSON.parse(plain) as SecretOpening;
      if (typeof parsed.value !== 'string' || typeof parsed.nonce !== 'string') throw new Error('shape');
      return { value: parsed.value, nonce: parsed.nonce };
    } catch (cause) {
      throw new FlotillaError(
        'FLT_SECRET_SEALED_INVALID',
        `the stored value of secret ${place.name} of ${place.app}@${place.version} cannot be decrypted with this server's secrets key (altered, or the key file was replaced)`,
        { details: { ...place }, cause },
      );
    }
  }
}

function aad(place: SecretPlace): Buffer {
  return Buffer.from(`flotilla-release-secret-v1\n${place.app}\n${place.version}\n${place.name}`, 'utf8');
}
