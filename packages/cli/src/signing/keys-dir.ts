/**
 * Where the offline keys live: `--keys-dir`, else `<config-dir>/keys`. Each role has a folder and
 * each key a file named after its TUF key id (`<keys-dir>/<role>/<keyid>.json`, mode 0600), so a
 * rotation adds files and never replaces one, and signing picks the files the current root names.
 */
import { readdir, rm } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { generateEd25519, tufKeyFromPublicKey, writeKeyFile } from '@flotilla/node-kit';
import type { LoadedKey } from '@flotilla/node-kit';

export type OfflineRole = 'root' | 'targets';
export const OFFLINE_ROLES: readonly OfflineRole[] = ['root', 'targets'];

const KEY_FILE = /^[0-9a-f]{64}\.json$/;

export function resolveKeysDir(flag: string | undefined, configDir: string, cwd: string): string {
  if (flag === undefined || flag.trim() === '') return join(configDir, 'keys');
  return isAbsolute(flag) ? flag : resolve(cwd, flag);
}

export function keyFilePath(keysDir: string, role: OfflineRole, keyId: string): string {
  return join(keysDir, role, `${keyId}.json`);
}

/** Key ids of the key files present for `role` (none when the folder does not exist). */
export async function keyIdsOnDisk(keysDir: string, role: OfflineRole): Promise<string[]> {
  const dir = join(keysDir, role);
  try {
    return (await readdir(dir)).filter((name) => KEY_FILE.test(name)).map((name) => name.slice(0, 64));
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new FlotillaError('FLT_IO', `cannot list ${dir}: ${(cause as Error).message}`, { cause });
  }
}

/** Generates `count` new ed25519 keys for `role` and writes each to its own 0600 file. */
export async function generateKeys(
  keysDir: string,
  role: OfflineRole,
  count: number,
  passphrase: string | undefined,
): Promise<LoadedKey[]> {
  const keys: LoadedKey[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const { privateKeyPem, publicKey } = generateEd25519();
      const path = keyFilePath(keysDir, role, tufKeyFromPublicKey(publicKey).keyID);
      keys.push(
        await writeKeyFile(path, { role, privateKeyPem }, passphrase === undefined ? {} : { passphrase }),
      );
    }
  } catch (error) {
    await discardKeys(keysDir, role, keys);
    throw error;
  }
  return keys;
}

/** Removes key files that were generated but never registered (the server refused the root). */
export async function discardKeys(
  keysDir: string,
  role: OfflineRole,
  keys: readonly LoadedKey[],
): Promise<void> {
  for (const key of keys) await rm(keyFilePath(keysDir, role, key.keyId), { force: true });
}
