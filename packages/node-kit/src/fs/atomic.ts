/**
 * Files that must appear whole or not at all, and never replace what is there: written to a temp
 * file, fsynced, then hard-linked into place (link fails with EEXIST instead of overwriting).
 */
import { constants as fsConstants } from 'node:fs';
import { link, mkdir, open, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/** Writes `bytes` as `dir/name` unless it exists; 'exists' leaves the existing file untouched. */
export async function createFileExclusive(
  dir: string,
  name: string,
  bytes: Uint8Array,
  mode: number,
): Promise<'created' | 'exists'> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${randomBytes(8).toString('hex')}.tmp`);
  const handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, join(dir, name));
    return 'created';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
    throw e;
  } finally {
    await unlink(tmp);
  }
}
