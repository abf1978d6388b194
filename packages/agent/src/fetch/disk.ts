/** How much the data dir's file system can still hold; an interface so tests can simulate a full disk. */
import { statfs } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';

export interface DiskProbe {
  /** Bytes an unprivileged writer can still use on the file system holding `path`. */
  freeBytes(path: string): Promise<number>;
}

export const statfsProbe: DiskProbe = {
  async freeBytes(path) {
    try {
      const s = await statfs(path);
      return s.bavail * s.bsize;
    } catch (cause) {
      throw new FlotillaError('FLT_IO', `cannot read free space of ${path}`, { details: { path }, cause });
    }
  },
};

/** Room kept free beyond the estimate: file system overhead, state.db, logs. */
export const DISK_MARGIN_BYTES = 16 * 1024 * 1024;

export async function ensureRoom(
  probe: DiskProbe,
  path: string,
  neededBytes: number,
  what: string,
): Promise<void> {
  const free = await probe.freeBytes(path);
  const needed = neededBytes + DISK_MARGIN_BYTES;
  if (free < needed) {
    throw new FlotillaError(
      'FLT_DISK_SPACE',
      `not enough disk space for ${what}: ${needed} bytes needed (incl. a ${DISK_MARGIN_BYTES}-byte margin), ${free} free on ${path}`,
      { details: { path, neededBytes: needed, freeBytes: free } },
    );
  }
}
