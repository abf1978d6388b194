import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { MemoryStore, diffTrees, materialize } from '@flotilla/store';
import { convertImage } from '../../src/index.js';
import type { LayerSource } from '../../src/index.js';
import { busyboxImage } from '../helpers/image.js';
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

void describe('convertImage', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flt-gw-convert-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('applies layers with whiteouts and opaque dirs, keeping owners, modes, xattrs and links, into a reproducible squashfs', async () => {
    const { layers, expected } = await busyboxImage(dir);
    const sources = await layerFiles(join(dir, 'layers'), layers);
    const store = new MemoryStore();
    const first = await convertImage(sources, { outDir: join(dir, 'out1'), sink: store });
    const seen = await unsquash(first.squashfsPath, join(dir, 'x1'));
    assert.deepEqual(normalized(seen), normalized(expected));
    assert.equal(first.entries, expected.size);
    assert.deepEqual(first.notInTree, []);
    assert.deepEqual(await readdir(join(dir, 'out1')), ['image.sqfs'], 'no scratch or temporary file left');

    const second = await convertImage(sources, {
      outDir: join(dir, 'out2'),
      workDir: join(dir, 'work2'),
      outName: 'again.sqfs',
    });
    assert.equal(second.squashfsSha256, first.squashfsSha256, 'the same image gives the same squashfs bytes');
    assert.deepEqual(await readFile(second.squashfsPath), await readFile(first.squashfsPath));
    assert.equal(second.tree, null);

    // The release tree holds the same files, contents and modes; links point at the same files
    // (relative, as trees hold them); owners and xattrs live in the squashfs only.
    assert.ok(first.tree);
    const target = join(dir, 'tree1');
    await materialize(store, first.tree.root, target, {
      limits: { allowSpecialModes: true },
      durability: 'none',
    });
    const inTree = await scanDir(target);
    const fromSquash = new Map(
      [...expected].map(([path, s]) => {
        const t: Seen = { ...s, uid: 0, gid: 0 };
        delete t.xattrs;
        if (path === '/bin/sh') t.target = 'busybox';
        return [path, t];
      }),
    );
    const treeSeen = new Map([...inTree].map(([p, s]) => [p, { ...s, uid: 0, gid: 0 }]));
    assert.deepEqual(normalized(treeSeen), normalized(fromSquash));
  });

  void it('gives file-level deltas between image versions: the next version changes one file of the tree', async () => {
    const store = new MemoryStore();
    const v1 = await busyboxImage(join(dir, 'v1'), 'v1');
    const v2 = await busyboxImage(join(dir, 'v2'), 'v2');
    const a = await convertImage(await layerFiles(join(dir, 'v1l'), v1.layers), {
      outDir: join(dir, 'v1o'),
      sink: store,
    });
    const b = await convertImage(await layerFiles(join(dir, 'v2l'), v2.layers), {
      outDir: join(dir, 'v2o'),
      sink: store,
    });
    assert.ok(a.tree && b.tree);
    assert.notEqual(a.squashfsSha256, b.squashfsSha256);
    const diff = await diffTrees(store, a.tree.root, b.tree.root, { limits: { allowSpecialModes: true } });
    assert.deepEqual(diff.added, []);
    assert.deepEqual(diff.removed, []);
    assert.deepEqual(
      diff.modified.map((m) => m.path),
      ['etc/version'],
    );
  });

  async function refused(
    entries: LayerEntry[],
    code: string,
    pattern: RegExp,
    allowDevices = false,
  ): Promise<void> {
    const layer = await makeLayer(entries);
    const out = join(dir, `hostile-${layer.digestHex.slice(0, 8)}`);
    const sources = await layerFiles(join(dir, 'hostile-layers'), [layer]);
    await assert.rejects(convertImage(sources, { outDir: out, allowDevices }), (error: unknown) => {
      assert.ok(error instanceof FlotillaError);
      assert.equal(error.code, code, error.message);
      assert.match(error.message, pattern);
      return true;
    });
    assert.deepEqual(await readdir(out), [], 'nothing is published and no scratch is left');
  }

  void it('refuses hostile layers: paths and links escaping the root, device nodes unless allowed', async () => {
    await refused([{ name: '../escape', content: 'x' }], 'FLT_LAYER_UNSAFE', /\.\./);
    await refused([{ name: 'a/../../escape', content: 'x' }], 'FLT_LAYER_UNSAFE', /climbs out/);
    await refused(
      [
        { name: 'a/', type: 'directory' },
        { name: 'a/up', type: 'symlink', linkname: '../../etc/shadow' },
      ],
      'FLT_LAYER_UNSAFE',
      /escapes the root/,
    );
    await refused(
      [
        { name: 'x', content: 'x' },
        { name: 'h', type: 'link', linkname: '../x' },
      ],
      'FLT_LAYER_UNSAFE',
      /\.\./,
    );
    await refused(
      [
        { name: 'l', type: 'symlink', linkname: '/etc' },
        { name: 'l/passwd', content: 'through the link' },
      ],
      'FLT_LAYER_UNSAFE',
      /not a directory/,
    );
    await refused(
      [
        { name: 'dev/', type: 'directory' },
        { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 },
      ],
      'FLT_LAYER_UNSAFE',
      /device/,
    );
    await refused([{ name: 'h', type: 'link', linkname: 'missing' }], 'FLT_LAYER_INVALID', /not a file/);

    const garbage = join(dir, 'garbage');
    await writeFile(garbage, Buffer.from('\x1f\x8bthis is not gzip at all'));
    await assert.rejects(
      convertImage([{ digest: 'sha256:00', path: garbage }], { outDir: join(dir, 'garbage-out') }),
      {
        code: 'FLT_LAYER_INVALID',
      },
    );
  });

  void it('reports a failing or missing sqfstar as FLT_CONVERT_FAILED and leaves no partial file', async () => {
    const { layers } = await busyboxImage(join(dir, 'fail'));
    const sources = await layerFiles(join(dir, 'fail-layers'), layers);
    const out = join(dir, 'fail-out');
    await assert.rejects(
      convertImage(sources, { outDir: out, compressor: 'no-such-compressor' }),
      (error: unknown) => {
        assert.ok(error instanceof FlotillaError, String((error as Error).stack));
        assert.equal(error.code, 'FLT_CONVERT_FAILED');
        assert.match(error.message, /sqfstar exited with/);
        return true;
      },
    );
    assert.deepEqual(await readdir(out), []);
    const path = process.env.PATH;
    process.env.PATH = join(dir, 'no-such-bin');
    try {
      await assert.rejects(
        convertImage(sources, { outDir: out, squashfsWriter: 'sqfstar' }),
        (error: unknown) => {
          assert.ok(error instanceof FlotillaError, String((error as Error).stack));
          assert.equal(error.code, 'FLT_CONVERT_FAILED');
          assert.match(error.message, /not installed/);
          return true;
        },
      );
    } finally {
      process.env.PATH = path;
    }
    assert.deepEqual(await readdir(out), []);
  });

  void it('keeps device nodes and FIFOs when the platform allows devices; the release tree leaves them out', async () => {
    const layer = await makeLayer([
      { name: 'dev/', type: 'directory' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'run/', type: 'directory' },
      { name: 'run/pipe', type: 'fifo', mode: 0o600 },
      { name: 'ok', content: 'ok\n' },
    ]);
    const store = new MemoryStore();
    const result = await convertImage(await layerFiles(join(dir, 'dev-layers'), [layer]), {
      outDir: join(dir, 'dev-out'),
      allowDevices: true,
      sink: store,
    });
    assert.deepEqual(result.notInTree, ['/dev/null', '/run/pipe']);
    const seen = await unsquash(result.squashfsPath, join(dir, 'dev-x'));
    assert.equal(seen.get('/dev/null')?.type, 'char');
    assert.equal(seen.get('/dev/null')?.mode, 0o666);
    assert.equal(seen.get('/run/pipe')?.type, 'fifo');
    assert.equal(result.tree?.stats.files, 1);
  });
});
