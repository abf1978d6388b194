/**
 * One process per data directory: a server or an agent takes `<data-dir>/flotilla.lock` before it
 * opens anything there, and a second process on the same directory refuses to start, naming the
 * holder (docs/operations.md "One process per data directory": a second server on one SQLite
 * database, or a second agent with one identity, would corrupt state and kill the first one's apps).
 *
 * The lock file holds the holder's pid, host and command. It appears whole or not at all (written
 * to a temporary file, then hard-linked into place, which fails if it exists). A lock whose pid no
 * longer runs on this host is stale (the holder crashed or was killed) and is taken over, as
 * PostgreSQL does with `postmaster.pid`. A time-based lock (proper-lockfile) would instead need a
 * timer refreshing it and could not name the holder.
 */
import { mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { writeFileAtomicSync } from './fs/atomic.js';

export const DATA_DIR_LOCK_FILE = 'flotilla.lock';

export interface DataDirLockHolder {
  pid: number;
  hostname: string;
  /** What holds it, e.g. `flotilla server`. */
  owner: string;
  startedAt: string;
}

export interface DataDirLock {
  readonly path: string;
  /** Removes the lock file if it is still this process's. Idempotent. */
  release(): void;
}

/**
 * Takes the data directory's lock for this process (creating the directory, mode 0700, if needed).
 * Throws FLT_DATA_DIR_LOCKED naming the holder's pid when another live process holds it.
 */
export function lockDataDir(dir: string, owner: string): DataDirLock {
  const path = join(dir, DATA_DIR_LOCK_FILE);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw ioError(path, e);
  }
  const mine: DataDirLockHolder = {
    pid: process.pid,
    hostname: hostname(),
    owner,
    startedAt: new Date().toISOString(),
  };
  const text = `${JSON.stringify(mine)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (linkInPlace(path, text)) return heldLock(path, text);
    const holder = readHolder(path);
    if (holder === 'gone') continue;
    if (holder !== null && isAlive(holder)) throw lockedError(dir, path, holder);
    // Stale (its process is gone) or unreadable: remove it and try again.
    try {
      unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(path, e);
    }
  }
  throw new FlotillaError('FLT_DATA_DIR_LOCKED', `could not take the lock ${path}: it keeps changing`, {
    details: { dir, lockFile: path },
  });
}

/** The live holder of the data directory's lock, or null when it is free or stale. */
export function dataDirLockHolder(dir: string): DataDirLockHolder | null {
  const holder = readHolder(join(dir, DATA_DIR_LOCK_FILE));
  return holder !== null && holder !== 'gone' && isAlive(holder) ? holder : null;
}

function linkInPlace(path: string, text: string): boolean {
  try {
    return writeFileAtomicSync(path, text, { mode: 0o600, existing: 'keep' }) === 'written';
  } catch (e) {
    throw ioError(path, e);
  }
}

function readHolder(path: string): DataDirLockHolder | null | 'gone' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw ioError(path, e);
  }
  try {
    const parsed = JSON.parse(text) as Partial<DataDirLockHolder>;
    if (typeof parsed.pid !== 'number' || !Number.isInteger(parsed.pid) || parsed.pid <= 0) return null;
    return {
      pid: parsed.pid,
      hostname: typeof parsed.hostname === 'string' ? parsed.hostname : '',
      owner: typeof parsed.owner === 'string' ? parsed.owner : 'a Flotilla process',
      startedAt: typeof parsed.startedAt === 'string' ? parsed.startedAt : '',
    };
  } catch {
    return null;
  }
}

/** On this host: does the pid run? On another host (a shared disk) it cannot be known: assume so. */
function isAlive(holder: DataDirLockHolder): boolean {
  if (holder.hostname !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function heldLock(path: string, text: string): DataDirLock {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    try {
      if (readFileSync(path, 'utf8') === text) unlinkSync(path);
    } catch {
      // already gone; nothing to release
    }
  };
  // A process that exits without closing leaves no lock behind (a killed one leaves a stale one).
  process.once('exit', release);
  return { path, release };
}

function lockedError(dir: string, path: string, holder: DataDirLockHolder): FlotillaError {
  const where = holder.hostname === hostname() ? '' : ` on ${holder.hostname}`;
  const since = holder.startedAt ? ` since ${holder.startedAt}` : '';
  return new FlotillaError(
    'FLT_DATA_DIR_LOCKED',
    `${dir} is in use by ${holder.owner} (pid ${holder.pid}${where}${since}): ` +
      `stop that process first, or use another data directory (if no such process runs, delete ${path})`,
    { details: { dir, lockFile: path, ...holder } },
  );
}

function ioError(path: string, cause: unknown): FlotillaError {
  return new FlotillaError('FLT_IO', `cannot use the lock file ${path}: ${(cause as Error).message}`, {
    cause,
  });
}
