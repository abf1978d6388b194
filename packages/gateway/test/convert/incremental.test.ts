import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MemoryStore } from '@flotilla/store';
import { ConversionCache, convertImage } from '../../src/index.js';
import type { ConvertResult, LayerSource } from '../../src/index.js';
import { makeLayer } from '../helpers/oci.js';
import type { Layer, LayerEntry } from '../helpers/oci.js';
import { normalized, scanDir } from '../helpers/scan.js';
import type { Seen } from '../helpers/scan.js';
import { run } from '../helpers/services.js';

async function layerFiles(dir: string, layers: Layer[]): Promise<LayerSource[]> {
  await mkdir(dir, { recursive: true });
  const out: LayerSource[] = [];
  for (const layer of layers) {
    const path = join(dir, layer.digestHex);
    await writeFile(path, layer.blob);
    out.push({ digest: `sha256:${layer.digestHex}`, path });
  }
  return out;
}

async function unsquash(file: string, into: string): Promise<Map<string, Seen>> {
  await run('unsquashfs', ['-no-progress', '-d', into, file]);
  return scanDir(into, true);
}

// Contents spanning several 128 KiB blocks, compressible and not (stored blocks), and empty.
const noise = randomBytes(300 * 1024);
const text = Buffer.from('squashfs block\n'.repeat(20_000));

/** The base layer: directories, owners, xattrs, symlinks, a hard link, big and empty files. */
const baseEntries: LayerEntry[] = [
  { name: 'bin/', type: 'directory' },
  { name: 'bin/tool', content: noise, mode: 0o755 },
  { name: 'bin/tool-link', type: 'link', linkname: 'bin/tool' },
  { name: 'bin/sh', type: 'symlink', linkname: '/bin/tool' },
  { name: 'etc/', type: 'directory' },
  { name: 'etc/text', content: text, uid: 1000, gid: 100, mode: 0o640 },
  { name: 'etc/empty', content: '' },
  { name: 'etc/capable', content: 'cap\n', xattrs: { 'user.note': 'hi', 'trusted.other': 'there' } },
  { name: 'opt/', type: 'directory', uid: 7, gid: 8, mode: 0o750 },
  { name: 'opt/keep', content: 'kept\n' },
  { name: 'opt/replaced', content: 'in the base layer\n' },
  { name: 'dev/', type: 'directory' },
  { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
  { name: 'run/', type: 'directory' },
  { name: 'run/pipe', type: 'fifo', mode: 0o600 },
];

void describe('incremental conversion', () => {
  let dir: string;
  let base: LayerSource[];
  let v1Top: LayerSource[];
  let v2Top: LayerSource[];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flt-gw-incr-'));
    base = await layerFiles(join(dir, 'layers'), [
      await makeLayer(baseEntries),
      await makeLayer([
        { name: 'usr/', type: 'directory' },
        { name: 'usr/lib/', type: 'directory' },
        { name: 'usr/lib/big', content: Buffer.concat([text, noise]) },
        { name: 'etc/.wh.empty' },
      ]),
    ]);
    // v1's top layer replaces a base file and hides a directory's contents; v2's does neither,
    // so v2 shows base files whose bytes are not in v1's squashfs.
    v1Top = await layerFiles(join(dir, 'layers'), [
      await makeLayer([
        { name: 'opt/replaced', content: 'in v1\n' },
        { name: 'bin/.wh..wh..opq' },
        { name: 'bin/new', content: 'v1\n' },
      ]),
    ]);
    v2Top = await layerFiles(join(dir, 'layers'), [
      await makeLayer([
        { name: 'app/', type: 'directory' },
        { name: 'app/data', content: randomBytes(200 * 1024) },
        { name: 'app/tool-again', type: 'link', linkname: 'bin/tool' },
        { name: 'etc/text', content: 'changed\n', uid: 1000, gid: 100 },
      ]),
    ]);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const convert = (
    name: string,
    layers: LayerSource[],
    extra: Parameters<typeof convertImage>[1] | object = {},
  ) => convertImage(layers, { outDir: join(dir, name), allowDevices: true, ...extra });

  void it('writes what sqfstar writes: unsquashfs gives the same files, modes, owners, links, xattrs and nodes', async () => {
    const ours = await convert('ours', [...base, ...v2Top]);
    const theirs = await convert('theirs', [...base, ...v2Top], { squashfsWriter: 'sqfstar' });
    assert.notEqual(ours.index, null);
    assert.equal(theirs.index, null);
    const a = await unsquash(ours.squashfsPath, join(dir, 'ours-x'));
    const b = await unsquash(theirs.squashfsPath, join(dir, 'theirs-x'));
    assert.deepEqual(normalized(a), normalized(b));
    assert.equal(a.get('/etc/capable')?.xattrs?.['user.note'], 'hi');
    assert.equal(a.get('/app/data')?.type, 'file');
    // Hard links stay one inode (unsquashfs links the paths again).
    const tool = await lstat(join(dir, 'ours-x', 'bin/tool'));
    assert.equal(tool.nlink, 3);
    assert.equal((await lstat(join(dir, 'ours-x', 'app/tool-again'))).ino, tool.ino);
  });

  void it('a v2 converted from v1 gives the same squashfs bytes and index as a cold conversion of v2', async () => {
    const images = new Map<string, string>();
    const cache = new ConversionCache(join(dir, 'cache'), (id) => images.get(id) ?? join(dir, 'none'));
    const tmp = join(dir, 'tmp');
    await mkdir(tmp, { recursive: true });
    const remember = async (r: ConvertResult): Promise<void> => {
      images.set(r.squashfsSha256, r.squashfsPath);
      await cache.remember(r.squashfsSha256, r.index!, tmp);
    };

    const v1 = await convert('v1', [...base, ...v1Top]);
    assert.deepEqual(v1.reused, { base: null, layers: 0, copiedBytes: 0 });
    await remember(v1);
    assert.equal(await cache.findBase(['sha256:' + '0'.repeat(64)]), null, 'nothing shared, no base');

    const found = await cache.findBase([...base, ...v2Top].map((l) => l.digest));
    assert.ok(found);
    assert.equal(found.id, v1.squashfsSha256);
    let warm: ConvertResult;
    try {
      warm = await convert('v2-warm', [...base, ...v2Top], { base: found });
    } finally {
      await found.close();
    }
    const cold = await convert('v2-cold', [...base, ...v2Top]);
    assert.equal(warm.squashfsSha256, cold.squashfsSha256);
    assert.deepEqual(await readFile(warm.squashfsPath), await readFile(cold.squashfsPath));
    assert.deepEqual(warm.index, cold.index);
    assert.equal(warm.reused.base, v1.squashfsSha256);
    assert.equal(warm.reused.layers, 2, 'the two shared layers are applied from their entries');
    assert.ok(warm.reused.copiedBytes > 250 * 1024, 'the unchanged files are copied, not compressed');
    assert.deepEqual(await readdir(join(dir, 'v2-warm')), ['image.sqfs'], 'no scratch left');

    const seen = await unsquash(warm.squashfsPath, join(dir, 'v2-x'));
    assert.equal((await readFile(join(dir, 'v2-x', 'opt/replaced'))).toString(), 'in the base layer\n');
    assert.deepEqual(await readFile(join(dir, 'v2-x', 'bin/tool')), noise);
    assert.equal(seen.get('/etc/text')?.uid, 1000);
    assert.equal(seen.has('/etc/empty'), false);

    // v2 as a base for v1 again: the reverse direction is as exact.
    await remember(warm);
    const back = await cache.findBase([...base, ...v1Top].map((l) => l.digest));
    assert.ok(back);
    try {
      const again = await convert('v1-again', [...base, ...v1Top], { base: back });
      assert.equal(again.squashfsSha256, v1.squashfsSha256);
    } finally {
      await back.close();
    }
  });

  void it('builds the same release tree from v1 as cold, taking the unchanged files by id', async () => {
    const images = new Map<string, string>();
    const cache = new ConversionCache(join(dir, 'cache3'), (id) => images.get(id) ?? join(dir, 'none'));
    const tmp = join(dir, 'tmp3');
    await mkdir(tmp, { recursive: true });
    const store = new MemoryStore();
    const v2Layers = [...base, ...v2Top];

    // A base converted without a tree: squashfs blocks are copied, every file is read for the tree.
    const plain = await convert('t-plain', [...base, ...v1Top]);
    images.set(plain.squashfsSha256, plain.squashfsPath);
    await cache.remember(plain.squashfsSha256, plain.index!, tmp);
    const cold = await convert('t-cold', v2Layers, { sink: new MemoryStore() });
    const fromPlain = await cache.findBase(v2Layers.map((l) => l.digest));
    assert.ok(fromPlain);
    try {
      const warm = await convert('t-warm1', v2Layers, { sink: store, base: fromPlain });
      assert.equal(warm.tree?.root, cold.tree?.root);
      assert.equal(warm.tree?.stats.reusedFiles, 0);
      assert.equal(warm.squashfsSha256, cold.squashfsSha256);
    } finally {
      await fromPlain.close();
    }

    // A base with a tree in the same store: its unchanged files are taken by id, not read.
    await cache.forget(plain.squashfsSha256);
    const v1 = await convert('t-v1', [...base, ...v1Top], { sink: store });
    images.set(v1.squashfsSha256, v1.squashfsPath);
    await cache.remember(v1.squashfsSha256, v1.index!, tmp);
    const found = await cache.findBase(v2Layers.map((l) => l.digest));
    assert.ok(found);
    try {
      const warm = await convert('t-warm2', v2Layers, { sink: store, base: found });
      assert.equal(warm.tree?.root, cold.tree?.root);
      assert.ok((warm.tree?.stats.reusedFiles ?? 0) >= 3, 'usr/lib/big, etc/capable, opt/keep by id');
      assert.equal(warm.squashfsSha256, cold.squashfsSha256);
      assert.deepEqual(warm.index?.trees, cold.index?.trees);
      // In another store, the ids are not usable: every file is read again.
      const elsewhere = await convert('t-warm3', v2Layers, { sink: new MemoryStore(), base: found });
      assert.equal(elsewhere.tree?.root, cold.tree?.root);
      assert.equal(elsewhere.tree?.stats.reusedFiles, 0);
    } finally {
      await found.close();
    }
  });

  void it('skips entries whose image is gone or whose index does not fit it, and forgets them with the image', async () => {
    const images = new Map<string, string>();
    const cacheDir = join(dir, 'cache2');
    const cache = new ConversionCache(cacheDir, (id) => images.get(id) ?? join(dir, 'gone', id));
    const tmp = join(dir, 'tmp2');
    await mkdir(tmp, { recursive: true });
    const v1 = await convert('c2-v1', [...base, ...v1Top]);
    const digests = [...base, ...v2Top].map((l) => l.digest);

    // The image left the cache: its entry is an orphan, removed when met.
    await cache.remember(v1.squashfsSha256, v1.index!, tmp);
    assert.equal(await cache.findBase(digests), null);
    assert.deepEqual(await readdir(cacheDir), []);

    // An index pointing past the end of the file (damaged): not used.
    images.set(v1.squashfsSha256, v1.squashfsPath);
    const damaged = structuredClone(v1.index!);
    for (const words of Object.values(damaged.blocks)) words[0] = 1e12;
    await cache.remember(v1.squashfsSha256, damaged, tmp);
    assert.equal(await cache.findBase(digests), null);

    await cache.remember(v1.squashfsSha256, v1.index!, tmp);
    const found = await cache.findBase(digests);
    assert.ok(found);
    await found.close();
    await cache.forget(v1.squashfsSha256);
    assert.deepEqual(await readdir(cacheDir), []);
    assert.deepEqual(await readdir(tmp), [], 'no temporary file left');
  });
});
