/**
 * The server's online keys: snapshot and timestamp (image and director repositories), the
 * director key (the director's root and per-device targets) and the gateway key (the image
 * repository's delegated `gateway` role, which signs only the apps the offline targets key
 * delegated to it). They sign automatically, so they live with the server; none of them can sign
 * the image repository's root or targets.
 */
import { join } from 'node:path';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { generateEd25519, memorySigner, readKeyFile, writeKeyFile } from '@flotilla/node-kit';
import type { LoadedKey, Signer } from '@flotilla/node-kit';

export const ONLINE_ROLES = ['snapshot', 'timestamp', 'director', 'gateway'] as const;
export type OnlineRole = (typeof ONLINE_ROLES)[number];
export type OnlineKeys = Readonly<Record<OnlineRole, Signer>>;

/** Fresh keys held only in memory (tests, throwaway servers). */
export function memoryOnlineKeys(): OnlineKeys {
  return {
    snapshot: memorySigner(generateEd25519().privateKeyPem),
    timestamp: memorySigner(generateEd25519().privateKeyPem),
    director: memorySigner(generateEd25519().privateKeyPem),
    gateway: memorySigner(generateEd25519().privateKeyPem),
  };
}

/**
 * Loads the online keys from `<dir>/<role>.key.json`, generating and persisting any that is missing
 * (mode 0600; encrypted when `passphrase` is set). Two processes starting together end up with the
 * same keys: key files are never overwritten, and the loser of the race reads the winner's key.
 */
export async function loadOrCreateOnlineKeys(
  dir: string,
  opts: { passphrase?: string } = {},
): Promise<OnlineKeys> {
  const keys = {} as Record<OnlineRole, Signer>;
  for (const role of ONLINE_ROLES)
    keys[role] = (await loadOrCreate(join(dir, `${role}.key.json`), role, opts.passphrase)).signer;
  const ids = new Set(Object.values(keys).map((k) => k.key.keyID));
  if (ids.size !== ONLINE_ROLES.length)
    throw new FlotillaError(
      'FLT_CONFIG_INVALID',
      `the online keys in ${dir} must be ${ONLINE_ROLES.length} different keys`,
    );
  return keys;
}

async function loadOrCreate(
  path: string,
  role: OnlineRole,
  passphrase: string | undefined,
): Promise<LoadedKey> {
  const options = passphrase === undefined ? {} : { passphrase };
  try {
    return await readKeyFile(path, options);
  } catch (e) {
    if (!isFlotillaError(e) || e.code !== 'FLT_NOT_FOUND') throw e;
  }
  try {
    return await writeKeyFile(path, { role, privateKeyPem: generateEd25519().privateKeyPem }, options);
  } catch (e) {
    if (isFlotillaError(e) && e.code === 'FLT_CONFLICT') return readKeyFile(path, options);
    throw e;
  }
}
