/** File system steps of the transaction, each safe to repeat after a crash. */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, open, readdir, rename, rm, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol/errors';

export function ioError(what: string, path: string, cause: unknown): FlotillaError {
  if (cause instanceof FlotillaError) return cause;
  const code = (cause as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new FlotillaError('FLT_DISK_SPACE', `${what} ${path}: no space left on the device`, {
      details: { path },
      cause,
    });
  return new FlotillaError('FLT_IO', `${what} ${path}: ${code ?? String(cause)}`, {
    details: { path, errno: code },
    cause,
  });
}

/** fsync of a directory, so that a rename or a new entry in it survives a power cut. */
export async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes a tree, including read-only directories a release may contain. */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch {
    await makeWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}

async function makeWritable(path: string): Promise<void> {
  const info = await lstat(path).catch(() => null);
  if (!info?.isDirectory()) return;
  await chmod(path, 0o700);
  for (const name of await readdir(path)) await makeWritable(join(path, name));
}

/** Points `link` at `target` (a relative path) atomically: a temp symlink renamed over it; null removes it. */
export async function switchSymlink(link: string, target: string | null): Promise<void> {
  const dir = dirname(link);
  if (target === null) {
    await unlink(link).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  } else {
    const temp = join(dir, `.${basename(link)}.${randomBytes(6).toString('hex')}`);
    await symlink(target, temp);
    try {
      await rename(temp, link);
    } catch (e) {
      await unlink(temp).catch(() => undefined);
      throw e;
    }
  }
  await fsyncDir(dir);
}

/** Temp symlinks a crash left next to `link`. */
export async function removeStaleLinks(link: string): Promise<void> {
  const dir = dirname(link);
  const prefix = `.${basename(link)}.`;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await unlink(join(dir, name)).catch(() => undefined);
  }
}
