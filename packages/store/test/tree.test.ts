import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  appendFile,
  chmod,
  lstat,
  mkdir,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import {
  FsStore,
  MemoryStore,
  buildTree,
  chunkStream,
  contentId,
  encodeObject,
  materialize,
  verifyTree,
} from '../src/index.js';
import type { StoreReader } from '../src/index.js';
import { withTempDir } from './helpers.js';
import { putDir, putFile, putRawDir, writeSampleTree } from './tree-fixtures.js';

void describe('buildTree → materialize → verifyTree', () => {
  void it('round trips a real tree through the filesystem store', async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, 'src');
      await writeSampleTree(src);
      const store = await FsStore.open({ root: join(dir, 'store') });
      const { root, stats } = await buildTree(src, { sink: store });
      assert.equal(stats.files, 7);
      assert.equal(stats.symlinks, 3);
      assert.equal(stats.dirs, 8);
      assert.ok(stats.uniqueChunks < stats.chunks, 'the copied file shares its chunks');
      assert.equal(stats.newChunks, stats.uniqueChunks);

      const out = join(dir, 'out');
      const written = await materialize(store, root, out);
      assert.deepEqual(written, {
        files: 7,
        dirs: 8,
        symlinks: 3,
        bytes: stats.bytes,
        reused: 0,
        reuseFallbacks: 0,
        bytesWritten: stats.bytes,
        trustedByStamp: 0,
        patched: 0,
        bytesPatched: 0,
        bytesReadBack: 0,
      });
      assert.deepEqual(await verifyTree(store, out, root), { ok: true, problems: [] });
      // Independent check with diff(1): same names, contents and symlinks.
      execFileSync('diff', ['-r', '--no-dereference', src, out]);
      assert.equal((await stat(join(out, 'bin/run'))).mode & 0o777, 0o755);
      assert.equal((await stat(join(out, 'readonly'))).mode & 0o777, 0o555);
      assert.equal((await stat(join(out, 'empty-file'))).size, 0);
      assert.deepEqual(await readdir(join(out, 'empty-dir')), []);
      assert.equal(await readlink(join(out, 'etc/app/run')), '../../bin/run');
      assert.equal(await readlink(join(out, 'dangling')), 'missing-target');
      await chmod(join(out, 'readonly'), 0o755);
    });
  });

  void it('gives the same root for the same content, and a second build stores nothing new', async () => {
    await withTempDir(async (dir) => {
      await writeSampleTree(join(dir, 'a'));
      await writeSampleTree(join(dir, 'b'));
      const store = new MemoryStore();
      const first = await buildTree(join(dir, 'a'), { sink: store });
      const second = await buildTree(join(dir, 'b'), { sink: store });
      assert.equal(second.root, first.root);
      assert.equal(second.stats.newChunks, 0);
      assert.equal(second.stats.newObjects, 0);
      await chmod(join(dir, 'a/readonly'), 0o755);
      await chmod(join(dir, 'b/readonly'), 0o755);
    });
  });

  void it('takes a file by a known id when the sink has that object, and reads it otherwise', async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, 'a'));
      await writeFile(join(dir, 'a/data'), 'the real bytes\n');
      await writeFile(join(dir, 'a/other'), 'other\n');
      const store = new MemoryStore();
      const ids = new Map<string, string>();
      const first = await buildTree(join(dir, 'a'), {
        sink: store,
        onFile: (path, mode, id) => ids.set(`${path}:${mode.toString(8)}`, id),
      });
      assert.equal(ids.size, 2);
      // A placeholder under the known id: not read, the same root.
      await mkdir(join(dir, 'b'));
      await writeFile(join(dir, 'b/data'), '');
      await writeFile(join(dir, 'b/other'), 'other\n');
      const known = (path: string, mode: number): string | undefined =>
        ids.get(`${path}:${mode.toString(8)}`);
      const second = await buildTree(join(dir, 'b'), { sink: store, knownFile: known });
      assert.equal(second.root, first.root);
      assert.equal(second.stats.reusedFiles, 2);
      // A sink without the object: the file is read (here the placeholder, so another root).
      const third = await buildTree(join(dir, 'b'), { sink: new MemoryStore(), knownFile: known });
      assert.equal(third.stats.reusedFiles, 0);
      assert.notEqual(third.root, first.root);
    });
  });

  void it('verifyTree reports every kind of difference', async () => {
    await withTempDir(async (dir) => {
      const src = join(dir, 'src');
      await writeSampleTree(src);
      const store = new MemoryStore();
      const { root } = await buildTree(src, { sink: store });
      const out = join(dir, 'out');
      await materialize(store, root, out, { durability: 'none' });
      await appendFile(join(out, 'etc/app/app.conf'), 'x');
      const blob = await readFile(join(out, 'lib/big/blob.bin'));
      blob[500_000]! ^= 1;
      await writeFile(join(out, 'lib/big/blob.bin'), blob);
      await chmod(join(out, 'bin/run'), 0o644);
      await writeFile(join(out, 'surprise'), '');
      await rm(join(out, 'empty-file'));
      await rm(join(out, 'run-link'));
      await symlink('elsewhere', join(out, 'run-link'));
      await rm(join(out, 'empty-dir'), { recursive: true });
      await writeFile(join(out, 'empty-dir'), '');
      const { ok, problems } = await verifyTree(store, out, root);
      assert.equal(ok, false);
      assert.deepEqual(problems.map((p) => `${p.path}:${p.problem}`).sort(), [
        'bin/run:mode',
        'empty-dir:kind',
        'empty-file:missing',
        'etc/app/app.conf:size',
        'lib/big/blob.bin:content',
        'run-link:target',
        'surprise:unexpected',
      ]);
      await chmod(join(out, 'readonly'), 0o755);
      await chmod(join(src, 'readonly'), 0o755);
    });
  });
});

void describe('buildTree refuses', () => {
  async function refusesBuild(setup: (src: string) => Promise<void>, code: string, limits = {}) {
    await withTempDir(async (dir) => {
      const src = join(dir, 'src');
      await mkdir(src);
      await setup(src);
      const store = new MemoryStore();
      await assert.rejects(buildTree(src, { sink: store, limits }), { code });
    });
  }

  void it('a FIFO', () =>
    refusesBuild(
      (src) => Promise.resolve(void execFileSync('mkfifo', [join(src, 'pipe')])),
      'FLT_FILE_TYPE_UNSUPPORTED',
    ));
  void it('a setuid file unless allowed', async () => {
    await refusesBuild(async (src) => {
      await writeFile(join(src, 'su'), 'x');
      await chmod(join(src, 'su'), 0o4755);
    }, 'FLT_MODE_UNSAFE');
  });
  void it('an absolute symlink', () =>
    refusesBuild((src) => symlink('/etc/passwd', join(src, 'l')), 'FLT_PATH_UNSAFE'));
  void it('a symlink escaping the tree', async () => {
    await refusesBuild(async (src) => {
      await mkdir(join(src, 'a'));
      await symlink('../../x', join(src, 'a/l'));
    }, 'FLT_PATH_UNSAFE');
  });
  void it('a symlink climbing through another symlink (l -> .., m -> l/../..)', async () => {
    await refusesBuild(async (src) => {
      await mkdir(join(src, 'd'));
      await symlink('..', join(src, 'd/l'));
      await symlink('l/../..', join(src, 'd/m'));
    }, 'FLT_PATH_UNSAFE');
  });
  void it('a non-UTF-8 file name', () =>
    refusesBuild((src) => writeFile(Buffer.from(`${src}/bad-\xff`, 'latin1'), 'x'), 'FLT_PATH_UNSAFE'));
  void it('a tree deeper than maxDepth', () =>
    refusesBuild(
      async (src) => void (await mkdir(join(src, 'a/b/c/d'), { recursive: true })),
      'FLT_LIMIT_EXCEEDED',
      {
        maxDepth: 3,
      },
    ));
  void it('a directory with too many entries', async () => {
    await refusesBuild(
      async (src) => {
        for (const name of ['a', 'b', 'c']) await writeFile(join(src, name), name);
      },
      'FLT_LIMIT_EXCEEDED',
      { maxEntriesPerDir: 2 },
    );
  });
  void it('a file larger than maxFileSize', () =>
    refusesBuild((src) => writeFile(join(src, 'f'), Buffer.alloc(5000)), 'FLT_LIMIT_EXCEEDED', {
      maxFileSize: 4999,
    }));
  void it('a tree with more entries than maxTotalEntries', async () => {
    await refusesBuild(
      async (src) => {
        await mkdir(join(src, 'a'));
        await writeFile(join(src, 'a/f'), 'x');
        await writeFile(join(src, 'g'), 'y');
      },
      'FLT_LIMIT_EXCEEDED',
      { maxTotalEntries: 2 },
    );
  });

  void it('but accepts a setuid file when allowSpecialModes is set', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'su'), 'x');
      await chmod(join(dir, 'su'), 0o4755);
      const store = new MemoryStore();
      const { root } = await buildTree(dir, { sink: store, limits: { allowSpecialModes: true } });
      await assert.rejects(materialize(store, root, join(dir, 'out')), { code: 'FLT_MODE_UNSAFE' });
      await materialize(store, root, join(dir, 'out2'), { limits: { allowSpecialModes: true } });
      assert.equal((await stat(join(dir, 'out2/su'))).mode & 0o7777, 0o4755);
    });
  });
});

void describe('materialize refuses hostile or broken trees and leaves nothing behind', () => {
  async function refusesTree(
    build: (store: MemoryStore) => Promise<string>,
    code: string,
    reader?: (s: MemoryStore) => StoreReader,
  ) {
    await withTempDir(async (dir) => {
      const store = new MemoryStore();
      const root = await build(store);
      const target = join(dir, 'out');
      await assert.rejects(
        materialize(reader ? reader(store) : store, root, target, {
          limits: { maxDepth: 8, maxTotalEntries: 500 },
        }),
        {
          code,
        },
      );
      await assert.rejects(lstat(target), { code: 'ENOENT' });
      assert.deepEqual(await readdir(dir), []);
    });
  }

  void it('a symlink at the root pointing to ..', () =>
    refusesTree((s) => putDir(s, [{ name: 'l', kind: 'symlink', target: '..' }]), 'FLT_PATH_UNSAFE'));
  void it('a nested symlink a -> ../../x', async () => {
    await refusesTree(async (s) => {
      const sub = await putDir(s, [{ name: 'a', kind: 'symlink', target: '../../x' }]);
      return putDir(s, [{ name: 'sub', kind: 'dir', hash: sub, mode: 0o755 }]);
    }, 'FLT_PATH_UNSAFE');
  });
  void it('l -> .. with a path through l (m -> l/../../etc), served unvalidated', async () => {
    await refusesTree(async (s) => {
      const d = await putRawDir(s, [
        { name: 'l', kind: 'symlink', target: '..' },
        { name: 'm', kind: 'symlink', target: 'l/../../etc' },
      ]);
      return putDir(s, [{ name: 'd', kind: 'dir', hash: d, mode: 0o755 }]);
    }, 'FLT_PATH_UNSAFE');
  });
  void it('a name ".." served unvalidated', async () => {
    await refusesTree(async (s) => {
      const f = await putFile(s, Buffer.from('pwned'));
      return putRawDir(s, [{ name: '..', kind: 'file', hash: f }]);
    }, 'FLT_PATH_UNSAFE');
  });
  void it('a chunk that does not match its hash', async () => {
    const good = Buffer.from('the real content');
    await refusesTree(
      async (s) => putDir(s, [{ name: 'f', kind: 'file', hash: await putFile(s, good) }]),
      'FLT_HASH_MISMATCH',
      (s) => ({
        getObject: (id) => s.getObject(id),
        getChunk: () => Promise.resolve(Buffer.from('the fake content')),
      }),
    );
  });
  void it('an object that does not match its hash', async () => {
    await refusesTree(
      async (s) => putDir(s, [{ name: 'f', kind: 'file', hash: await putFile(s, Buffer.from('x')) }]),
      'FLT_HASH_MISMATCH',
      (s) => ({
        getObject: async (id) => Buffer.from((await s.getObject(id)).toString().replace('"f"', '"g"')),
        getChunk: (id) => s.getChunk(id),
      }),
    );
  });
  void it('a missing chunk', async () => {
    await refusesTree(async (s) => {
      const content = Buffer.from('content never uploaded');
      const file = encodeObject({
        type: 'file',
        mode: 0o644,
        size: content.length,
        chunks: [{ id: contentId(content), size: content.length }],
      });
      await s.putObject(file.id, file.bytes);
      return putDir(s, [{ name: 'f', kind: 'file', hash: file.id }]);
    }, 'FLT_OBJECT_MISSING');
  });
  void it('a tree deeper than maxDepth', async () => {
    await refusesTree(async (s) => {
      let id = await putDir(s, []);
      for (let i = 0; i < 12; i++) id = await putDir(s, [{ name: 'd', kind: 'dir', hash: id, mode: 0o755 }]);
      return id;
    }, 'FLT_LIMIT_EXCEEDED');
  });
  void it('a small DAG that expands to a huge tree (shared subtrees)', async () => {
    await refusesTree(async (s) => {
      let id = await putFile(s, Buffer.from('leaf'));
      let kind: 'file' | 'dir' = 'file';
      for (let i = 0; i < 7; i++) {
        const entries = ['a', 'b', 'c', 'd'].map((name) =>
          kind === 'dir' ? { name, kind, hash: id, mode: 0o755 } : { name, kind, hash: id },
        );
        id = await putDir(s, entries);
        kind = 'dir';
      }
      return id;
    }, 'FLT_LIMIT_EXCEEDED');
  });

  void it('an existing target directory, which is left untouched', async () => {
    await withTempDir(async (dir) => {
      const store = new MemoryStore();
      const root = await putDir(store, [
        { name: 'f', kind: 'file', hash: await putFile(store, Buffer.from('x')) },
      ]);
      await writeFile(join(dir, 'keep'), 'mine');
      await assert.rejects(materialize(store, root, dir), { code: 'FLT_TARGET_EXISTS' });
      assert.deepEqual(await readdir(dir), ['keep']);
    });
  });
});

void describe('errors name the tree path once', () => {
  void it('a hash mismatch deep in the tree', async () => {
    await withTempDir(async (dir) => {
      const store = new MemoryStore();
      const leaf = await putDir(store, [
        { name: 'f', kind: 'file', hash: await putFile(store, Buffer.from('real')) },
      ]);
      const mid = await putDir(store, [{ name: 'b', kind: 'dir', hash: leaf, mode: 0o755 }]);
      const root = await putDir(store, [{ name: 'a', kind: 'dir', hash: mid, mode: 0o755 }]);
      const reader = {
        getObject: (id: string) => store.getObject(id),
        getChunk: () => Promise.resolve(Buffer.from('fake')),
      };
      await assert.rejects(materialize(reader, root, join(dir, 'out')), (error: unknown) => {
        assert.ok(error instanceof FlotillaError);
        assert.equal(error.code, 'FLT_HASH_MISMATCH');
        assert.equal((error.details as { path: string }).path, 'a/b/f');
        assert.match(error.message, /^a\/b\/f: chunk [0-9a-f]{64} does not match/);
        return true;
      });
    });
  });
});

void describe('file system failures are FLT_IO errors naming the path', () => {
  void it('build of a missing directory, a file, and materialize under a missing parent', async () => {
    await withTempDir(async (dir) => {
      const store = new MemoryStore();
      await assert.rejects(buildTree(join(dir, 'nope'), { sink: store }), { code: 'FLT_IO' });
      await writeFile(join(dir, 'file'), 'x');
      await assert.rejects(buildTree(join(dir, 'file'), { sink: store }), { code: 'FLT_VALIDATION' });
      const root = await putDir(store, []);
      await assert.rejects(materialize(store, root, join(dir, 'missing/parent/out')), { code: 'FLT_IO' });
    });
  });

  void it('a store rooted at a file, and chunking a missing path', async () => {
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'file'), 'x');
      await assert.rejects(FsStore.open({ root: join(dir, 'file') }), { code: 'FLT_IO' });
      const chunks = chunkStream(join(dir, 'missing'));
      await assert.rejects(chunks.next(), { code: 'FLT_IO' });
    });
  });
});

void describe('materialize directory modes', () => {
  void it('gives every directory its mode whether mkdir can set it (0755, 0700) or not (0775 under umask 022, 0555)', async () => {
    const previous = process.umask(0o022);
    try {
      await withTempDir(async (dir) => {
        const modes: Record<string, number> = {
          plain: 0o755,
          own: 0o700,
          group: 0o775,
          ro: 0o555,
        };
        for (const name of Object.keys(modes)) {
          await mkdir(join(dir, 'src', name, 'inner'), { recursive: true });
          await writeFile(join(dir, 'src', name, 'inner', 'f'), name);
        }
        for (const [name, mode] of Object.entries(modes)) await chmod(join(dir, 'src', name), mode);
        const store = new MemoryStore();
        const { root } = await buildTree(join(dir, 'src'), { sink: store });
        for (const durability of ['none', 'file'] as const) {
          const out = join(dir, `out-${durability}`);
          await materialize(store, root, out, { durability });
          assert.deepEqual(await verifyTree(store, out, root), { ok: true, problems: [] }, durability);
          for (const [name, mode] of Object.entries(modes))
            assert.equal((await stat(join(out, name))).mode & 0o7777, mode, `${durability}: ${name}`);
          for (const name of Object.keys(modes)) await chmod(join(out, name), 0o755);
        }
        for (const name of Object.keys(modes)) await chmod(join(dir, 'src', name), 0o755);
      });
    } finally {
      process.umask(previous);
    }
  });
});
