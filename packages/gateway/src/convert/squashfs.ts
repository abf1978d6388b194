import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';
import * as tar from 'tar-stream';
import type { Rootfs } from './rootfs.js';

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
  const pack = tar.pack();
  pack.pipe(child.stdin);
  child.stdin.on('error', () => undefined);
  try {
    await feed(rootfs, pack);
  } catch (error) {
    child.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw error;
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

async function feed(rootfs: Rootfs, pack: tar.Pack): Promise<void> {
  const paths = [...rootfs.nodes.keys()].filter((p) => p !== '').sort(byBytes);
  const firstOfInode = new Map<number, string>();
  for (const path of paths) {
    const node = rootfs.nodes.get(path);
    if (!node) continue;
    const base = {
      name: path,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      mtime: new Date(0),
      ...(Object.keys(node.xattrs).length > 0
        ? { pax: Object.fromEntries(Object.entries(node.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v])) }
        : {}),
    };
    switch (node.type) {
      case 'dir':
        await entry(pack, { ...base, type: 'directory' });
        break;
      case 'symlink':
        await entry(pack, { ...base, type: 'symlink', linkname: node.target ?? '' });
        break;
      case 'char':
      case 'block':
        await entry(pack, {
          ...base,
          type: node.type === 'char' ? 'character-device' : 'block-device',
          devmajor: node.devmajor ?? 0,
          devminor: node.devminor ?? 0,
        });
        break;
      case 'fifo':
        await entry(pack, { ...base, type: 'fifo' });
        break;
      case 'file': {
        const disk = rootfs.diskPath(path);
        const st = await lstat(disk);
        const first = firstOfInode.get(st.ino);
        if (first !== undefined) {
          await entry(pack, { ...base, type: 'link', linkname: first });
          break;
        }
        firstOfInode.set(st.ino, path);
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry({ ...base, type: 'file', size: st.size }, (error) =>
            error ? reject(error) : resolve(),
          );
          const source = createReadStream(disk);
          source.on('error', reject);
          source.pipe(sink);
        });
        break;
      }
    }
  }
  pack.finalize();
}

function entry(pack: tar.Pack, header: Parameters<tar.Pack['entry']>[0]): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, (error) => (error ? reject(error) : resolve()));
  });
}
