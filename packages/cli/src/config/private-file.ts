import { chmod, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { writeFileAtomic } from '@flotilla/node-kit';

/**
 * Writes a secret-bearing file so that no reader ever sees it half-written or readable by others:
 * the directory is created (or tightened) to 0700, then the content is written atomically and
 * durably as a 0600 file (node-kit's writeFileAtomic: temp file, fsync, rename, directory fsync).
 */
export async function writePrivateFile(path: string, content: string): Promise<void> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    await writeFileAtomic(path, content, { mode: 0o600 });
  } catch (cause) {
    throw new FlotillaError('FLT_IO', `cannot write ${path}: ${(cause as Error).message}`, { cause });
  }
}
