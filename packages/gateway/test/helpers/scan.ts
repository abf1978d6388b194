import { createHash } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './services.js';

/** What a test compares of one path of an image: type, permission bits, owner, target, content. */
export interface Seen {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  target?: string;
  sha256?: string;
  xattrs?: Record<string, string>;
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Every path below `dir` (as `/a/b`) with what lstat, readlink and getfattr say of it. */
export async function scanDir(dir: string, withXattrs = false): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const walk = async (abs: string, rel: string): Promise<void> => {
    for (const name of await readdir(abs)) {
      const a = join(abs, name);
      const r = `${rel}/${name}`;
      const st = await lstat(a);
      const seen: Seen = {
        type: st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : st.isCharacterDevice()
              ? 'char'
              : st.isBlockDevice()
                ? 'block'
                : st.isFIFO()
                  ? 'fifo'
                  : 'file',
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
      };
      if (seen.type === 'symlink') seen.target = await readlink(a);
      if (seen.type === 'file') seen.sha256 = sha256(await readFile(a));
      if (withXattrs && (seen.type === 'file' || seen.type === 'dir')) {
        const { stdout } = await run('getfattr', ['--absolute-names', '-d', '-m', '-', '-e', 'text', a]);
        const xattrs: Record<string, string> = {};
        for (const line of stdout.split('\n')) {
          const m = /^([^=#]+)="(.*)"$/.exec(line);
          if (m) xattrs[m[1] as string] = m[2] as string;
        }
        if (Object.keys(xattrs).length > 0) seen.xattrs = xattrs;
      }
      out.set(r, seen);
      if (seen.type === 'dir') await walk(a, r);
    }
  };
  await walk(dir, '');
  return out;
}

/** Symlinks compared as they are; modes of symlinks are meaningless (always 0777 on Linux). */
export function normalized(map: Map<string, Seen>): Record<string, Seen> {
  const out: Record<string, Seen> = {};
  for (const key of [...map.keys()].sort()) {
    const v = { ...(map.get(key) as Seen) };
    if (v.type === 'symlink') v.mode = 0o777;
    out[key] = v;
  }
  return out;
}
