/**
 * materialize's patch path: a large file that changed in a few chunks is written as a copy of the
 * file at its path in a `reuse` tree, patched with the chunks that differ; every byte is verified
 * against the file object (a copied range that does not hash right is written from the store).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MemoryStore, StampIndex, buildTree, materialize, verifyTree } from '../../src/index.js';
import type { MaterializeStats } from '../../src/index.js';
import { seededBytes, withTempDir } from '../helpers.js';

const MiB = 1024 * 1024;

interface Fixture {
  dir: string;
  store: MemoryStore;
  v1: string;
  v2: string;
  installed: string;
  /** v2's content of layer.tar. */
  layer: Buffer;
}

/** v1: an 8 MiB `layer.tar`; v2: the same with 256 KiB in its middle replaced and 1 KiB cut at its end. */
async function withLayers(fn: (f: Fixture) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const old = seededBytes(3, 8 * MiB);
    const layer = Buffer.concat([
      old.subarray(0, 4 * MiB),
      seededBytes(9, 256 * 1024),
      old.subarray(4 * MiB + 256 * 1024, 8 * MiB - 1024),
    ]);
    await mkdir(join(dir, 'src1'));
    await mkdir(join(dir, 'src2'));
    await writeFile(join(dir, 'src1/layer.tar'), old);
    await writeFile(join(dir, 'src2/layer.tar'), layer);
    await writeFile(join(dir, 'src1/small'), 'one\n');
    await writeFile(join(dir, 'src2/small'), 'two\n');
    const store = new MemoryStore();
    const v1 = (await buildTree(join(dir, 'src1'), { sink: store })).root;
    const v2 = (await buildTree(join(dir, 'src2'), { sink: store })).root;
    const installed = join(dir, 'v1');
    await materialize(store, v1, installed, { durability: 'none' });
    await fn({ dir, store, v1, v2, installed, layer });
  });
}

async function stage(f: Fixture, name: string): Promise<MaterializeStats> {
  const target = join(f.dir, name);
  const stats = await materialize(f.store, f.v2, target, {
    reuse: [{ dir: f.installed, root: f.v1 }],
    durability: 'none',
  });
  assert.deepEqual(await verifyTree(f.store, target, f.v2), { ok: true, problems: [] });
  assert.ok((await readFile(join(target, 'layer.tar'))).equals(f.layer));
  return stats;
}

void describe('materialize: a large changed file patched from the installed one', () => {
  void it('copies the installed file and writes only the chunks that changed: byte-identical', async () => {
    await withLayers(async (f) => {
      const stats = await stage(f, 'v2');
      assert.equal(stats.patched, 1);
      assert.ok(stats.bytesPatched > 0 && stats.bytesPatched < 2 * MiB, `patched ${stats.bytesPatched}`);
      // The small file is written from chunks; the installed tree is untouched.
      assert.equal(stats.bytesWritten, stats.bytesPatched + 4);
      assert.deepEqual(await verifyTree(f.store, f.installed, f.v1), { ok: true, problems: [] });
    });
  });

  void it('detects a corrupted installed file and writes the spoilt chunks from the store', async () => {
    await withLayers(async (f) => {
      const path = join(f.installed, 'layer.tar');
      const bytes = await readFile(path);
      bytes.fill(0x55, MiB, MiB + 4096); // a stretch of the unchanged part
      await writeFile(path, bytes);
      const stats = await stage(f, 'v2');
      assert.equal(stats.patched, 1);
      const clean = await withLayersPatchedBytes();
      assert.ok(stats.bytesPatched > clean, `${stats.bytesPatched} > ${clean}`);
    });
  });

  void it('trusts the copy of an installed file a stamp vouches for (no read-back), and reads back one changed since', async () => {
    await withTempDir(async (dir) => {
      const old = seededBytes(3, 8 * MiB);
      const layer = Buffer.concat([
        old.subarray(0, 4 * MiB),
        seededBytes(9, 256 * 1024),
        old.subarray(4 * MiB + 256 * 1024),
      ]);
      await mkdir(join(dir, 'src1'));
      await mkdir(join(dir, 'src2'));
      await writeFile(join(dir, 'src1/layer.tar'), old);
      await writeFile(join(dir, 'src2/layer.tar'), layer);
      const store = new MemoryStore();
      const v1 = (await buildTree(join(dir, 'src1'), { sink: store })).root;
      const v2 = (await buildTree(join(dir, 'src2'), { sink: store })).root;
      const installed = join(dir, 'v1');
      const { stamps } = await materialize(store, v1, installed, { durability: 'none', recordStamps: true });
      assert.ok(stamps !== undefined && stamps.length === 1, 'the installed layer is stamped');
      const stageWith = async (name: string) => {
        const target = join(dir, name);
        const stats = await materialize(store, v2, target, {
          reuse: [{ dir: installed, root: v1 }],
          durability: 'none',
          trusted: new StampIndex(stamps),
        });
        assert.deepEqual(await verifyTree(store, target, v2), { ok: true, problems: [] });
        return stats;
      };
      const trusted = await stageWith('trusted');
      assert.equal(trusted.patched, 1);
      assert.equal(trusted.bytesReadBack, 0);
      // Spoilt since its stamp (its modification time moves): read back, the spoilt chunks rewritten.
      const path = join(installed, 'layer.tar');
      const bytes = await readFile(path);
      bytes.fill(0x55, MiB, MiB + 4096);
      await writeFile(path, bytes);
      const checked = await stageWith('checked');
      assert.equal(checked.patched, 1);
      assert.ok(checked.bytesReadBack > 6 * MiB, `read back ${checked.bytesReadBack}`);
      assert.ok(checked.bytesPatched > trusted.bytesPatched);
    });
  });

  void it('writes from chunks when the installed file was cut, emptied or is not a regular file', async () => {
    await withLayers(async (f) => {
      const path = join(f.installed, 'layer.tar');
      await writeFile(path, (await readFile(path)).subarray(0, 2 * MiB));
      assert.equal((await stage(f, 'short')).patched, 0);
      await writeFile(path, '');
      assert.equal((await stage(f, 'empty')).patched, 0);
      await rm(path);
      execFileSync('mkfifo', [path]); // a copy would block on it
      assert.equal((await stage(f, 'fifo')).patched, 0);
    });
  });
});

/** The chunk bytes patched with an intact installed file. */
let cleanPatched: number | undefined;
async function withLayersPatchedBytes(): Promise<number> {
  if (cleanPatched !== undefined) return cleanPatched;
  await withLayers(async (f) => {
    cleanPatched = (await stage(f, 'clean')).bytesPatched;
  });
  return cleanPatched!;
}
