/** The agent's disk primitives: private directories and crash-safe file replacement. */
import { constants, mkdirSync, statSync, chmodSync, accessSync } from 'node:fs';
import { FlotillaError } from '@flotilla/protocol';
import { writeFileAtomicSync } from '@flotilla/node-kit';

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
 * Replaces `path` atomically and durably (node-kit's writeFileAtomicSync: temp file, fsync, rename,
 * directory fsync). A crash leaves either the old or the new content, never a mix.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  try {
    writeFileAtomicSync(path, data, { mode });
  } catch (e) {
    throw ioError('write', path, e);
  }
}
