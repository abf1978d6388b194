/**
 * Files at rest (docs/security.md "Files at rest"): the data directory holds password hashes, the
 * audit log, online keys and all release content, so only the server's own user may read it. The
 * server creates directories 0700 and files 0600 itself, whatever the umask, and at start tightens
 * a data directory left with looser modes (by an older version or by hand).
 */
import { chmod, lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';

/** Mode of every directory the server creates under its data directory. */
export const DATA_DIR_MODE = 0o700;
/** Mode of every file the server creates under its data directory. */
export const DATA_FILE_MODE = 0o600;

/**
 * Directories holding key files. A key file readable by others is not tightened: the key may have
 * been copied, so loading it refuses to start (FLT_KEY_FILE_UNSAFE_MODE) and the operator decides.
 */
const KEY_DIRS = new Set(['tuf-keys', 'tuf-offline']);

/**
 * Creates `dataDir` (0700) or takes group and other bits off it and everything under it; symlinks
 * below it are neither followed nor changed. Returns how many entries were changed (logged as a warning).
 */
export async function secureDataDir(dataDir: string, log: Logger): Promise<number> {
  await mkdir(dataDir, { recursive: true, mode: DATA_DIR_MODE });
  let changed = 0;
  const visit = async (path: string, inKeyDir: boolean): Promise<void> => {
    // The data directory itself may be a symlink (e.g. to another disk); nothing below is followed.
    const info = path === dataDir ? await stat(path) : await lstat(path);
    if (info.isSymbolicLink()) return;
    const mode = info.mode & 0o7777;
    if (info.isDirectory()) {
      if (mode !== DATA_DIR_MODE) {
        await chmod(path, DATA_DIR_MODE);
        changed++;
      }
      for (const name of await readdir(path)) {
        await visit(join(path, name), inKeyDir || (path === dataDir && KEY_DIRS.has(name)));
      }
    } else if (!inKeyDir && (mode & 0o077) !== 0) {
      await chmod(path, mode & 0o700);
      changed++;
    }
  };
  await visit(dataDir, false);
  if (changed > 0)
    log.warn({ dataDir, changed }, 'took group and other permissions off files in the data directory');
  return changed;
}
