/**
 * The one way Flotilla writes a state file (keys, credentials, trusted roots, TUF metadata): the
 * bytes go to a temporary file in the same directory (O_EXCL, the final mode from the start), which
 * is fsynced and closed, then renamed over the target (`replace`) or hard-linked into place (`keep`:
 * link fails with EEXIST instead of overwriting), and the directory is fsynced so that the new entry
 * survives a power cut. A crash leaves the old content or the new, never a mix, and no temp file
 * in the way of the next write.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export interface WriteFileAtomicOptions {
  /** Mode of the new file. Default 0o600 (state files hold keys and tokens). */
  mode?: number;
  /** `replace` (default) renames over an existing file; `keep` leaves it and returns 'exists'. */
  existing?: 'replace' | 'keep';
  /** Creates the directory (mode 0700, with parents) when missing. Default false. */
  createDir?: boolean;
}

/** The file system calls an atomic write makes (node:fs/promises; tests record them). */
export interface AtomicFileIo {
  mkdir: (path: string, opts: { recursive: true; mode: number }) => Promise<unknown>;
  open: (path: string, flags: number, mode?: number) => Promise<fsp.FileHandle>;
  rename: (from: string, to: string) => Promise<void>;
  link: (existing: string, path: string) => Promise<void>;
  unlink: (path: string) => Promise<void>;
}

/** The synchronous calls of `writeFileAtomicSync` (node:fs; tests record them). */
export interface AtomicFileIoSync {
  mkdirSync: (path: string, opts: { recursive: true; mode: number }) => unknown;
  openSync: (path: string, flags: number, mode?: number) => number;
  writeSync: (fd: number, bytes: Uint8Array, offset: number, length: number) => number;
  fsyncSync: (fd: number) => void;
  closeSync: (fd: number) => void;
  renameSync: (from: string, to: string) => void;
  linkSync: (existing: string, path: string) => void;
  unlinkSync: (path: string) => void;
}

const CREATE_EXCLUSIVE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;

function tempPathOf(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

function bytesOf(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

function isEexist(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === 'EEXIST';
}

/**
 * Writes `data` to `path` atomically and durably (see the module comment). Returns 'exists' only
 * with `existing: 'keep'` when `path` was already there (it is left untouched). Throws the file
 * system's error (ENOENT, EACCES, ENOSPC…) with no temp file left behind; callers map it to FLT_IO.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: WriteFileAtomicOptions = {},
  io: AtomicFileIo = fsp,
): Promise<'written' | 'exists'> {
  const dir = dirname(path);
  if (opts.createDir === true) await io.mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = tempPathOf(path);
  let result: 'written' | 'exists' = 'written';
  try {
    const handle = await io.open(temp, CREATE_EXCLUSIVE, opts.mode ?? 0o600);
    try {
      await handle.writeFile(bytesOf(data));
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (opts.existing === 'keep') {
      await io.link(temp, path).catch((e: unknown) => {
        if (!isEexist(e)) throw e;
        result = 'exists';
      });
    } else {
      await io.rename(temp, path);
    }
  } finally {
    await io.unlink(temp).catch(() => undefined); // gone already after a rename
  }
  if (result === 'written') {
    const handle = await io.open(dir, fs.constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  return result;
}

/** `writeFileAtomic` for synchronous callers (an agent's identity at start, before any loop runs). */
export function writeFileAtomicSync(
  path: string,
  data: string | Uint8Array,
  opts: WriteFileAtomicOptions = {},
  io: AtomicFileIoSync = fs,
): 'written' | 'exists' {
  const dir = dirname(path);
  if (opts.createDir === true) io.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temp = tempPathOf(path);
  let result: 'written' | 'exists' = 'written';
  try {
    const fd = io.openSync(temp, CREATE_EXCLUSIVE, opts.mode ?? 0o600);
    try {
      const bytes = bytesOf(data);
      let written = 0;
      while (written < bytes.length) written += io.writeSync(fd, bytes, written, bytes.length - written);
      io.fsyncSync(fd);
    } finally {
      io.closeSync(fd);
    }
    if (opts.existing === 'keep') {
      try {
        io.linkSync(temp, path);
      } catch (e) {
        if (!isEexist(e)) throw e;
        result = 'exists';
      }
    } else {
      io.renameSync(temp, path);
    }
  } finally {
    try {
      io.unlinkSync(temp);
    } catch {
      // gone already after a rename
    }
  }
  if (result === 'written') {
    const fd = io.openSync(dir, fs.constants.O_RDONLY);
    try {
      io.fsyncSync(fd);
    } finally {
      io.closeSync(fd);
    }
  }
  return result;
}

/**
 * Writes `bytes` as `dir/name` unless it exists (creating `dir`, mode 0700, if needed); 'exists'
 * leaves the existing file untouched.
 */
export async function createFileExclusive(
  dir: string,
  name: string,
  bytes: Uint8Array,
  mode: number,
): Promise<'created' | 'exists'> {
  const result = await writeFileAtomic(join(dir, name), bytes, { mode, existing: 'keep', createDir: true });
  return result === 'written' ? 'created' : 'exists';
}
