/**
 * Loading the offline keys a root names for a role, from the keys directory. A role can be signed
 * only with a threshold of its keys; fewer is an error that says which keys are missing.
 */
import type { Metadata, Root } from '@tufjs/models';
import { FlotillaError } from '@flotilla/protocol';
import { readKeyFile, roleKeysOf } from '@flotilla/node-kit';
import type { LoadedKey } from '@flotilla/node-kit';
import { keyFilePath, keyIdsOnDisk } from './keys-dir.js';
import type { OfflineRole } from './keys-dir.js';

export interface RoleSigningKeys {
  keys: LoadedKey[];
  threshold: number;
}

/**
 * Every key file in `keysDir` that `root` names for `role`, decrypted with `passphrase`. Throws
 * FLT_TUF_KEY_MISMATCH when fewer than the role's threshold are present.
 */
export async function loadRoleKeys(
  keysDir: string,
  root: Metadata<Root>,
  role: OfflineRole,
  passphrase: string | undefined,
): Promise<RoleSigningKeys> {
  const { keys: named, threshold } = roleKeysOf(root.signed, role);
  const onDisk = new Set(await keyIdsOnDisk(keysDir, role));
  const present = named.filter((k) => onDisk.has(k.keyID));
  if (present.length < threshold) {
    throw new FlotillaError(
      'FLT_TUF_KEY_MISMATCH',
      `root v${root.signed.version} needs ${threshold} of its ${role} keys to sign, but ${keysDir}/${role}/ ` +
        `holds ${present.length}: ${named.map((k) => k.keyID.slice(0, 12)).join(', ')} (use --keys-dir)`,
      { details: { role, needed: threshold, named: named.map((k) => k.keyID) } },
    );
  }
  const keys: LoadedKey[] = [];
  for (const key of present) {
    const loaded = await readKeyFile(
      keyFilePath(keysDir, role, key.keyID),
      passphrase === undefined ? {} : { passphrase },
    );
    if (loaded.keyId !== key.keyID) {
      throw new FlotillaError(
        'FLT_KEY_FILE_INVALID',
        `${keyFilePath(keysDir, role, key.keyID)} holds key ${loaded.keyId}, not the key its name says`,
      );
    }
    keys.push(loaded);
  }
  return { keys, threshold };
}
