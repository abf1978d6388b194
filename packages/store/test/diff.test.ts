import assert from 'node:assert/strict';
import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MemoryStore, buildTree, diffTrees, walkTree } from '../src/index.js';
import type { WalkItem } from '../src/index.js';
import { countingReader, seededBytes, withTempDir } from './helpers.js';
import { putDir, putFile } from './tree-fixtures.js';

/** Ten subtrees of ten files each, so that skipping unchanged subtrees is visible in the counts. */
async function writeWideTree(root: string): Promise<void> {
  for (let d = 0; d < 10; d++) {
    await mkdir(join(root, `pkg${d}/sub`), { recursive: true });
    for (let f = 0; f < 10; f++)
      await writeFile(join(root, `pkg${d}/sub/file${f}.txt`), `package ${d} file ${f}\n`);
  }
  await writeFile(join(root, 'big.bin'), seededBytes(31, 600 * 1024));
}

async function collect(items: AsyncIterable<WalkItem>): Promise<WalkItem[]> {
  const out: WalkItem[] = [];
  for await (const item of items) out.push(item);
  return out;
}

void describe('walkTree', () => {
  void it('lists every entry depth first in name order', async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, 'b/c'), { recursive: true });
      await writeFile(join(dir, 'a'), 'a');
      await writeFile(join(dir, 'b/c/d'), 'd');
      await symlink('c/d', join(dir, 'b/link'));
      const store = new MemoryStore();
      const { root } = await buildTree(dir, { sink: store });
      const items = await collect(walkTree(store, root));
      assert.deepEqual(
        items.map((i) => `${i.path}:${i.entry.kind}:${i.depth}`),
        ['a:file:0', 'b:dir:0', 'b/c:dir:1', 'b/c/d:file:2', 'b/link:symlink:1'],
      );
    });
  });

  void it('accepts a symlink to an ancestor inside the tree (d/l -> ..)', async () => {
    const store = new MemoryStore();
    const d = await putDir(store, [
      { name: 'l', kind: 'symlink', target: '..' },
      { name: 'm', kind: 'symlink', target: 'l/x' },
    ]);
    const root = await putDir(store, [{ name: 'd', kind: 'dir', hash: d, mode: 0o755 }]);
    const items = await collect(walkTree(store, root));
    assert.deepEqual(
      items.map((i) => i.path),
      ['d', 'd/l', 'd/m'],
    );
  });

  void it('refuses ids that are not SHA-256 hex before asking the reader', async () => {
    const asked: string[] = [];
    const reader = { getObject: (id: string) => (asked.push(id), Promise.resolve(Buffer.alloc(0))) };
    await assert.rejects(collect(walkTree(reader, '../../etc/passwd')), { code: 'FLT_VALIDATION' });
    assert.deepEqual(asked, []);
  });

  void it('refuses escaping symlinks and oversized trees', async () => {
    const store = new MemoryStore();
    const escaping = await putDir(store, [{ name: 'l', kind: 'symlink', target: '../x' }]);
    await assert.rejects(collect(walkTree(store, escaping)), { code: 'FLT_PATH_UNSAFE' });
    const leaf = await putFile(store, Buffer.from('x'));
    const wide = await putDir(store, [
      { name: 'a', kind: 'file', hash: leaf },
      { name: 'b', kind: 'file', hash: leaf },
      { name: 'c', kind: 'file', hash: leaf },
    ]);
    await assert.rejects(collect(walkTree(store, wide, { limits: { maxTotalEntries: 2 } })), {
      code: 'FLT_LIMIT_EXCEEDED',
    });
    await assert.rejects(collect(walkTree(store, leaf)), { code: 'FLT_MANIFEST_INVALID' });
  });
});

void describe('diffTrees', () => {
  void it('reports exactly the changed entries and reads only the changed path', async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, 'src');
      await writeWideTree(src);
      const store = new MemoryStore();
      const before = await buildTree(src, { sink: store });

      await writeFile(join(src, 'pkg3/sub/file4.txt'), 'package 3 file 4, changed and longer\n');
      await rm(join(src, 'pkg7/sub/file0.txt'));
      await writeFile(join(src, 'pkg7/sub/new.txt'), 'new\n');
      await mkdir(join(src, 'added-dir/inner'), { recursive: true });
      await writeFile(join(src, 'added-dir/inner/x'), 'x');
      const after = await buildTree(src, { sink: store });

      const { reader, requested } = countingReader(store);
      const diff = await diffTrees(reader, before.root, after.root);
      assert.deepEqual(diff.modified, [
        { path: 'pkg3/sub/file4.txt', kind: 'file', oldSize: 17, newSize: 37 },
      ]);
      assert.deepEqual(diff.added, [
        { path: 'added-dir', kind: 'dir' },
        { path: 'added-dir/inner', kind: 'dir' },
        { path: 'added-dir/inner/x', kind: 'file', size: 1 },
        { path: 'pkg7/sub/new.txt', kind: 'file', size: 4 },
      ]);
      assert.deepEqual(diff.removed, [{ path: 'pkg7/sub/file0.txt', kind: 'file', size: 17 }]);
      // Objects read: both roots; pkg3, pkg3/sub, pkg7, pkg7/sub on both sides; the modified file on
      // both sides; the removed and the added file; added-dir, added-dir/inner, added-dir/inner/x.
      // None of the 8 unchanged packages, nor big.bin, is read.
      assert.equal(requested.length, 2 + 8 + 2 + 2 + 3);
      // What an update fetches: new root, the 4 changed dirs, the 3 added dirs/files' objects, 2 new files, and their chunks.
      assert.equal(diff.objects.length, 1 + 4 + 2 + 1 + 2);
      assert.equal(diff.chunks.length, 3);
    });
  });

  void it('reads nothing for identical roots and everything for a first install', async () => {
    await withTempDir(async (dir) => {
      await writeWideTree(dir);
      const store = new MemoryStore();
      const { root, stats } = await buildTree(dir, { sink: store });
      const { reader, requested } = countingReader(store);
      const same = await diffTrees(reader, root, root);
      assert.deepEqual(same, { added: [], removed: [], modified: [], objects: [], chunks: [] });
      assert.equal(requested.length, 0);
      const first = await diffTrees(store, null, root);
      assert.equal(first.added.filter((c) => c.kind === 'file').length, stats.files);
      assert.equal(first.chunks.length, stats.uniqueChunks);
      assert.equal(first.objects.length, store.size - stats.uniqueChunks);
    });
  });

  void it('reports mode, symlink and kind changes, and leaves out ids the caller has', async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, 'd'));
      await writeFile(join(dir, 'f'), 'f');
      await symlink('f', join(dir, 'l'));
      await writeFile(join(dir, 'k'), 'becomes a dir');
      const store = new MemoryStore();
      const before = await buildTree(dir, { sink: store });
      await chmod(join(dir, 'd'), 0o700);
      await chmod(join(dir, 'f'), 0o600);
      await rm(join(dir, 'l'));
      await symlink('d', join(dir, 'l'));
      await rm(join(dir, 'k'));
      await mkdir(join(dir, 'k'));
      const after = await buildTree(dir, { sink: store });
      const diff = await diffTrees(store, before.root, after.root, { have: (id) => store.has(id) });
      assert.deepEqual(diff.modified, [
        { path: 'd', kind: 'dir' },
        { path: 'f', kind: 'file', oldSize: 1, newSize: 1 },
        { path: 'l', kind: 'symlink' },
      ]);
      assert.deepEqual(diff.removed, [{ path: 'k', kind: 'file', size: 13 }]);
      assert.deepEqual(diff.added, [{ path: 'k', kind: 'dir' }]);
      assert.deepEqual(diff.objects, []);
      assert.deepEqual(diff.chunks, []);
    });
  });
});
