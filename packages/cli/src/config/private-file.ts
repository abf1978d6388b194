import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';

/**
 * Writes a secret-bearing file so that no reader ever sees it half-written or readable by others:
 * the directory is created (or tightened) to 0700, the content goes to a 0600 temp file in the same
 * directory, is fsynced, then renamed over the target.
 */
export async function writePrivateFile(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw new FlotillaError('FLT_IO', `cannot write ${path}: ${(cause as Error).message}`, { cause });
  }
}
