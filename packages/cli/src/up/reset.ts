/**
 * `flotilla up --reset`: start the quick start over. Removes its data directory (server database
 * and content, the local agent and its apps, the agent's registration key), the CLI's credentials
 * when they are for this quick start's server, and moves the offline keys this server's root
 * names out of the keys directory (to `<keys-dir>/retired/<time>/`, never deleted), so that
 * `flotilla keys init` works again. Refused while a server or agent runs on the data directory.
 */
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { dataDirLockHolder } from '@flotilla/node-kit';
import { readCredentials, deleteCredentials, credentialsPath } from '../config/credentials.js';
import { keyFilePath, OFFLINE_ROLES } from '../signing/keys-dir.js';

export interface ResetResult {
  removedDataDir: boolean;
  removedCredentials: string | null;
  /** Where the key files went, if any were moved. */
  retiredKeysTo: string | null;
  retiredKeys: number;
}

export async function resetQuickStart(input: {
  dataDir: string;
  /** The URL the quick start's server is reached at (credentials for it are removed). */
  url: string;
  configDir: string;
  keysDir: string;
  now?: Date;
}): Promise<ResetResult> {
  for (const part of ['server', 'agent']) {
    const holder = dataDirLockHolder(join(input.dataDir, part));
    if (holder)
      throw new FlotillaError(
        'FLT_DATA_DIR_LOCKED',
        `cannot reset ${input.dataDir}: ${holder.owner} (pid ${holder.pid}) is running on it; stop it first`,
        { details: { dir: join(input.dataDir, part), ...holder } },
      );
  }
  const keyIds = await rootKeyIds(join(input.dataDir, 'server', 'tuf', 'image'));
  const stamp = (input.now ?? new Date()).toISOString().replace(/[:.]/g, '-');
  const retiredDir = join(input.keysDir, 'retired', stamp);
  let retiredKeys = 0;
  for (const role of OFFLINE_ROLES) {
    for (const keyId of keyIds[role]) {
      const from = keyFilePath(input.keysDir, role, keyId);
      await mkdir(join(retiredDir, role), { recursive: true, mode: 0o700 });
      try {
        await rename(from, keyFilePath(retiredDir, role, keyId));
        retiredKeys += 1;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot move ${from}`, e);
      }
    }
  }
  if (retiredKeys === 0) await rm(retiredDir, { recursive: true, force: true });

  let removedCredentials: string | null = null;
  const stored = await readCredentials(input.configDir).catch(() => null);
  if (stored && sameHostPort(stored.server, input.url) && (await deleteCredentials(input.configDir)))
    removedCredentials = credentialsPath(input.configDir);

  let removedDataDir = false;
  try {
    await readdir(input.dataDir);
    await rm(input.dataDir, { recursive: true, force: true });
    removedDataDir = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot remove ${input.dataDir}`, e);
  }
  return {
    removedDataDir,
    removedCredentials,
    retiredKeysTo: retiredKeys > 0 ? retiredDir : null,
    retiredKeys,
  };
}

/** The key ids every stored version of the image root names for root and targets. */
async function rootKeyIds(dir: string): Promise<Record<'root' | 'targets', Set<string>>> {
  const ids = { root: new Set<string>(), targets: new Set<string>() };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return ids;
  }
  for (const name of names.filter((n) => /^\d+\.root\.json$/.test(n))) {
    try {
      const root = JSON.parse(await readFile(join(dir, name), 'utf8')) as {
        signed?: { roles?: Record<string, { keyids?: unknown }> };
      };
      for (const role of OFFLINE_ROLES) {
        const keyids = root.signed?.roles?.[role]?.keyids;
        if (Array.isArray(keyids))
          for (const id of keyids) if (typeof id === 'string' && /^[0-9a-f]{64}$/.test(id)) ids[role].add(id);
      }
    } catch {
      // An unreadable root names no key of ours.
    }
  }
  return ids;
}

function sameHostPort(a: string, b: string): boolean {
  try {
    return new URL(a).host === new URL(b).host;
  } catch {
    return false;
  }
}

function ioError(message: string, cause: unknown): FlotillaError {
  return new FlotillaError('FLT_IO', `${message}: ${(cause as Error).message}`, { cause });
}
