/** The agent's disk primitives: private directories and crash-safe file replacement. */
import {
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  chmodSync,
  writeSync,
  accessSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';

export function ioError(action: string, path: string, cause: unknown): FlotillaError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const hint =
    code === 'ENOSPC'
      ? ' (the disk is full: free space, then restart the agent)'
      : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
        ? ' (no permission: run the agent as the owner of its data dir, or choose another --data-dir)'
        : '';
  return new FlotillaError('FLT_IO', `cannot ${action} ${path}: ${code ?? String(cause)}${hint}`, {
    details: { path, errno: code },
    cause,
  });
}

/** Creates `path` (and parents) if missing, ensures it is a writable directory, mode 0700. */
export function ensurePrivateDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    if (!statSync(path).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    chmodSync(path, 0o700);
    accessSync(path, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw ioError('use directory', path, e);
  }
}

/**
 * Replaces `path` atomically: write a temp file in the same directory, fsync it, rename over the
 * target, fsync the directory. A crash leaves either the old or the new content, never a mix.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
    syncDirectory(dirname(path));
  } catch (e) {
    rmSync(temp, { force: true });
    throw ioError('write', path, e);
  }
}

function syncDirectory(path: string): void {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
