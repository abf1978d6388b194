import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';
import type { Rootfs } from './rootfs.js';
import { TAR_END, encodeHeader, padding } from './tar.js';
import type { TarEntry } from './tar.js';

/** Byte order of names in the squashfs input: the same image always gives the same tar. */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Writes the root file system as a squashfs file with `sqfstar` (squashfs-tools ≥ 4.5), fed a
 * tar made here in a fixed order with owners, modes, xattrs, link targets and device numbers
 * from the layers; every time stamp is 0 and `-reproducible` is on, so the same image gives the
 * same bytes. Owners are kept (no -all-root).
 */
export async function writeSquashfs(
  rootfs: Rootfs,
  outPath: string,
  compressor: string,
  signal?: AbortSignal,
): Promise<void> {
  const root = rootfs.nodes.get('');
  const args = [
    '-reproducible',
    '-mkfs-time',
    '0',
    '-all-time',
    '0',
    '-comp',
    compressor,
    '-no-progress',
    '-quiet',
    '-force',
    '-exit-on-error',
    '-root-mode',
    (root?.mode ?? 0o755).toString(8),
    '-root-uid',
    String(root?.uid ?? 0),
    '-root-gid',
    String(root?.gid ?? 0),
    outPath,
  ];
  const child = spawn('sqfstar', args, { stdio: ['pipe', 'ignore', 'pipe'], ...(signal ? { signal } : {}) });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 8192) stderr += c.toString('utf8');
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
  child.stdin.on('error', () => undefined);
  // sqfstar gone before the end of the tar (bad option, full disk, not installed): stop writing
  // instead of waiting for a 'drain' that never comes, and report its exit below.
  let exitedEarly = false;
  const gone = exited.then(
    () => {
      exitedEarly = true;
      throw new FlotillaError('FLT_CONVERT_FAILED', 'sqfstar exited before reading the whole image');
    },
    (error: unknown) => {
      exitedEarly = true;
      throw error;
    },
  );
  gone.catch(() => undefined);
  try {
    await feed(rootfs, child.stdin, gone);
  } catch (error) {
    // A write into the closed pipe can fail (EPIPE) before the exit is seen: the exit decides.
    const pipeClosed = ['EPIPE', 'ERR_STREAM_DESTROYED'].includes(
      (error as NodeJS.ErrnoException).code ?? '',
    );
    if (!exitedEarly && !pipeClosed) {
      child.kill('SIGKILL');
      await exited.catch(() => undefined);
      throw error;
    }
  }
  let code: number;
  try {
    code = await exited;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new FlotillaError(
      'FLT_CONVERT_FAILED',
      missing
        ? 'sqfstar is not installed (Debian package squashfs-tools, 4.5 or later)'
        : `sqfstar failed to start: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (code !== 0) {
    throw new FlotillaError(
      'FLT_CONVERT_FAILED',
      `sqfstar exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' ')}`,
      {
        details: { exitCode: code },
      },
    );
  }
}

async function feed(rootfs: Rootfs, out: NodeJS.WritableStream, gone: Promise<never>): Promise<void> {
  const write = async (bytes: Buffer): Promise<void> => {
    if (!out.write(bytes)) await Promise.race([once(out, 'drain'), gone]);
  };
  const paths = [...rootfs.nodes.keys()].filter((p) => p !== '').sort(byBytes);
  const firstOfInode = new Map<number, string>();
  for (const path of paths) {
    const node = rootfs.nodes.get(path);
    if (!node) continue;
    const entry: TarEntry = {
      name: path,
      type: 'file',
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      size: 0,
      linkname: '',
      devmajor: node.devmajor ?? 0,
      devminor: node.devminor ?? 0,
      xattrs: node.xattrs,
    };
    switch (node.type) {
      case 'dir':
      case 'char':
      case 'block':
      case 'fifo':
        await write(encodeHeader({ ...entry, type: node.type }));
        break;
      case 'symlink':
        await write(encodeHeader({ ...entry, type: 'symlink', linkname: node.target ?? '' }));
        break;
      case 'file': {
        const disk = rootfs.diskPath(path);
        const st = await lstat(disk);
        const first = firstOfInode.get(st.ino);
        if (first !== undefined) {
          await write(encodeHeader({ ...entry, type: 'link', linkname: first }));
          break;
        }
        firstOfInode.set(st.ino, path);
        await write(encodeHeader({ ...entry, size: st.size }));
        let sent = 0;
        for await (const chunk of createReadStream(disk)) {
          sent += (chunk as Buffer).length;
          await write(chunk as Buffer);
        }
        if (sent !== st.size)
          throw new FlotillaError('FLT_IO', `${path} changed size while being written to the squashfs`);
        await write(Buffer.alloc(padding(sent)));
        break;
      }
    }
  }
  await write(TAR_END);
  out.end();
}
