import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeLayer } from './oci.js';
import type { Layer, LayerEntry } from './oci.js';
import { sha256 } from './scan.js';
import { run } from './services.js';
import type { Seen } from './scan.js';

/**
 * A three-layer test image built from busybox-static, with what an image's layers do to each
 * other: a file deleted (whiteout), a file replaced with other owner and mode, an opaque
 * directory (its marker after a new entry in the same layer), a hard link whose source is later
 * replaced, a setuid file, a sticky directory, owners other than root, an xattr, absolute and
 * relative symlinks; the third layer is zstd-compressed unless `zstd` is false (Docker 20.10
 * reads no zstd layers). `expected` is the result, written out
 * by hand from those rules (OCI image spec "Applying Changesets").
 */
export async function busyboxImage(
  dir: string,
  version = 'v1',
  zstd = true,
): Promise<{ layers: Layer[]; expected: Map<string, Seen> }> {
  const busybox = await readFile('/bin/busybox');
  const l1: LayerEntry[] = [
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', content: busybox, mode: 0o755 },
    { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' },
    { name: 'bin/ls', type: 'symlink', linkname: 'busybox' },
    { name: 'bin/cat', type: 'symlink', linkname: 'busybox' },
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' },
    { name: 'etc/deleted', content: 'to be deleted\n' },
    { name: 'etc/replaced', content: 'old\n' },
    { name: 'opq/', type: 'directory' },
    { name: 'opq/old1', content: 'old1\n' },
    { name: 'opq/sub/', type: 'directory' },
    { name: 'opq/sub/old2', content: 'old2\n' },
    { name: 'home/', type: 'directory' },
    { name: 'home/user/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
    {
      name: 'home/user/notes',
      content: 'mine\n',
      mode: 0o600,
      uid: 1000,
      gid: 1000,
      xattrs: { 'user.flotilla.note': 'kept' },
    },
    { name: 'usr/', type: 'directory' },
    { name: 'usr/bin/', type: 'directory' },
    { name: 'usr/bin/su-like', content: 'setuid\n', mode: 0o4755 },
    { name: 'usr/lib/', type: 'directory' },
    { name: 'usr/lib/libx.so', type: 'symlink', linkname: '../../lib/libx.so.1' },
    { name: 'lib/', type: 'directory' },
    { name: 'lib/libx.so.1', content: 'lib\n' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'data/', type: 'directory' },
    { name: 'data/hard1', content: 'shared\n' },
    { name: 'data/hard2', type: 'link', linkname: 'data/hard1' },
  ];
  const l2: LayerEntry[] = [
    { name: 'etc/.wh.deleted' },
    { name: 'etc/replaced', content: 'new\n', mode: 0o640, gid: 42 },
    { name: 'opq/new', content: 'fresh\n' },
    { name: 'opq/.wh..wh..opq' },
    { name: 'bin/.wh.cat' },
    { name: 'home/user/more', content: 'more\n', uid: 1000, gid: 1000 },
  ];
  const l3: LayerEntry[] = [
    { name: 'data/hard1', content: 'changed\n' },
    { name: 'etc/version', content: `${version}\n` },
  ];
  const layers = [
    await makeLayer(l1),
    await makeLayer(l2, 'none'),
    zstd ? await zstdLayer(dir, l3) : await makeLayer(l3),
  ];

  const d = (mode = 0o755, uid = 0, gid = 0): Seen => ({ type: 'dir', mode, uid, gid });
  const f = (
    content: string | Buffer,
    mode = 0o644,
    uid = 0,
    gid = 0,
    xattrs?: Record<string, string>,
  ): Seen => ({
    type: 'file',
    mode,
    uid,
    gid,
    sha256: sha256(content),
    ...(xattrs ? { xattrs } : {}),
  });
  const l = (target: string): Seen => ({ type: 'symlink', mode: 0o777, uid: 0, gid: 0, target });
  const expected = new Map<string, Seen>([
    ['/bin', d()],
    ['/bin/busybox', f(busybox, 0o755)],
    ['/bin/sh', l('/bin/busybox')],
    ['/bin/ls', l('busybox')],
    ['/etc', d()],
    ['/etc/passwd', f('root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n')],
    ['/etc/replaced', f('new\n', 0o640, 0, 42)],
    ['/etc/version', f(`${version}\n`)],
    ['/opq', d()],
    ['/opq/new', f('fresh\n')],
    ['/home', d()],
    ['/home/user', d(0o750, 1000, 1000)],
    ['/home/user/notes', f('mine\n', 0o600, 1000, 1000, { 'user.flotilla.note': 'kept' })],
    ['/home/user/more', f('more\n', 0o644, 1000, 1000)],
    ['/usr', d()],
    ['/usr/bin', d()],
    ['/usr/bin/su-like', f('setuid\n', 0o4755)],
    ['/usr/lib', d()],
    ['/usr/lib/libx.so', l('../../lib/libx.so.1')],
    ['/lib', d()],
    ['/lib/libx.so.1', f('lib\n')],
    ['/tmp', d(0o1777)],
    ['/data', d()],
    ['/data/hard1', f('changed\n')],
    ['/data/hard2', f('shared\n')],
  ]);
  return { layers, expected };
}

async function zstdLayer(dir: string, entries: LayerEntry[]): Promise<Layer> {
  const plain = await makeLayer(entries, 'none');
  await mkdir(dir, { recursive: true });
  const tarPath = join(dir, `l3-${sha256(plain.tar).slice(0, 8)}.tar`);
  await writeFile(tarPath, plain.tar);
  await run('zstd', ['-q', '-f', '-19', tarPath, '-o', `${tarPath}.zst`]);
  const blob = await readFile(`${tarPath}.zst`);
  return {
    tar: plain.tar,
    blob,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
    digestHex: sha256(blob),
  };
}
