import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmod,
  lstat,
  mkdir,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { MemoryStore, buildTree, materialize, parseObject, verifyTree, walkTree } from '../../src/index.js';
import type { MaterializeOptions, MaterializeStats, StoreReader } from '../../src/index.js';
import { seededBytes, withTempDir } from '../helpers.js';

/** v1: small files, an executable, a read-only file, an empty file, a multi-chunk file, a symlink. */
async function writeV1(root: string): Promise<void> {
  await mkdir(join(root, 'lib/deep'), { recursive: true });
  await writeFile(join(root, 'a.txt'), 'alpha\n');
  await writeFile(join(root, 'run.sh'), '#!/bin/sh\necho run\n');
  await chmod(join(root, 'run.sh'), 0o755);
  await writeFile(join(root, 'ro.txt'), 'read only\n');
  await chmod(join(root, 'ro.txt'), 0o444);
  await writeFile(join(root, 'empty'), '');
  await writeFile(join(root, 'lib/big.bin'), seededBytes(7, 3 * 1024 * 1024 + 17));
  await writeFile(join(root, 'lib/deep/c.txt'), 'charlie v1\n');
  await writeFile(join(root, 'lib/deep/d.txt'), 'delta\n');
  await symlink('lib/deep/d.txt', join(root, 'd-link'));
}

const UNCHANGED = ['a.txt', 'run.sh', 'ro.txt', 'empty', 'lib/big.bin', 'lib/deep/d.txt'];

interface Fixture {
  dir: string;
  store: MemoryStore;
  v1: string;
  v2: string;
  /** v1 materialized: the installed release. */
  installed: string;
  v2Bytes: number;
}

/** v2 is v1 with lib/deep/c.txt changed and a new file; v1 is materialized at `installed`. */
async function withReleases(fn: (f: Fixture) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    await writeV1(join(dir, 'src1'));
    execFileSync('cp', ['-a', join(dir, 'src1'), join(dir, 'src2')]);
    await writeFile(join(dir, 'src2/lib/deep/c.txt'), 'charlie v2, longer\n');
    await writeFile(join(dir, 'src2/new.txt'), 'new in v2\n');
    const store = new MemoryStore();
    const v1 = (await buildTree(join(dir, 'src1'), { sink: store })).root;
    const built = await buildTree(join(dir, 'src2'), { sink: store });
    const installed = join(dir, 'releases/v1');
    await mkdir(join(dir, 'releases'));
    await materialize(store, v1, installed, { durability: 'none' });
    await fn({ dir, store, v1, v2: built.root, installed, v2Bytes: built.stats.bytes });
  });
}

async function stage(f: Fixture, options: MaterializeOptions = {}, name = 'v2'): Promise<MaterializeStats> {
  const target = join(f.dir, 'releases', name);
  const stats = await materialize(f.store, f.v2, target, {
    reuse: [{ dir: f.installed, root: f.v1 }],
    durability: 'none',
    ...options,
  });
  assert.deepEqual(await verifyTree(f.store, target, f.v2), { ok: true, problems: [] });
  return stats;
}

async function inode(path: string): Promise<{ ino: number; nlink: number }> {
  const info = await lstat(path);
  return { ino: info.ino, nlink: info.nlink };
}

void describe('materialize with reuse', () => {
  void it('hardlinks every unchanged file of the installed tree and writes the rest from chunks', async () => {
    await withReleases(async (f) => {
      const stats = await stage(f);
      const changedBytes = 'charlie v2, longer\n'.length + 'new in v2\n'.length;
      assert.deepEqual(stats, {
        files: 8,
        dirs: 2,
        symlinks: 1,
        bytes: f.v2Bytes,
        reused: UNCHANGED.length,
        reuseFallbacks: 0,
        bytesWritten: changedBytes,
      });
      for (const path of UNCHANGED) {
        const old = await inode(join(f.installed, path));
        const now = await inode(join(f.dir, 'releases/v2', path));
        assert.equal(now.ino, old.ino, path);
        assert.equal(now.nlink, 2, path);
      }
      assert.equal((await inode(join(f.dir, 'releases/v2/lib/deep/c.txt'))).nlink, 1);
      // The old release is untouched: same modes, same content.
      assert.deepEqual(await verifyTree(f.store, f.installed, f.v1), { ok: true, problems: [] });
    });
  });

  void it('copies instead in copy mode: other inodes, same content and modes', async () => {
    await withReleases(async (f) => {
      const stats = await stage(f, { reuseMode: 'copy' });
      assert.equal(stats.reused, UNCHANGED.length);
      for (const path of UNCHANGED) {
        const old = await inode(join(f.installed, path));
        const now = await inode(join(f.dir, 'releases/v2', path));
        assert.notEqual(now.ino, old.ino, path);
        assert.equal(now.nlink, 1, path);
        assert.equal(old.nlink, 1, path);
      }
      assert.equal((await stat(join(f.dir, 'releases/v2/ro.txt'))).mode & 0o7777, 0o444);
    });
  });

  void it('falls back to chunks for a file modified, chmod-ed, removed or replaced by a symlink', async () => {
    await withReleases(async (f) => {
      // Same size, other content: only hashing can tell.
      await writeFile(join(f.installed, 'a.txt'), 'ALPHA\n');
      const big = await readFile(join(f.installed, 'lib/big.bin'));
      big[2 * 1024 * 1024]! ^= 0xff;
      await writeFile(join(f.installed, 'lib/big.bin'), big);
      await chmod(join(f.installed, 'run.sh'), 0o700);
      await rm(join(f.installed, 'lib/deep/d.txt'));
      // A symlink to a file of the right content outside the tree: never followed.
      await writeFile(join(f.dir, 'outside-ro.txt'), 'read only\n');
      await chmod(join(f.dir, 'outside-ro.txt'), 0o444);
      await rm(join(f.installed, 'ro.txt'));
      await symlink(join(f.dir, 'outside-ro.txt'), join(f.installed, 'ro.txt'));

      const stats = await stage(f);
      assert.equal(stats.reused, 1, 'only the empty file is still good');
      assert.equal(stats.reuseFallbacks, UNCHANGED.length - 1);
      const v2 = join(f.dir, 'releases/v2');
      assert.equal(await readFile(join(v2, 'a.txt'), 'utf8'), 'alpha\n');
      assert.equal((await inode(join(v2, 'lib/big.bin'))).nlink, 1);
      // The chmod-ed old file was neither linked nor chmod-ed back.
      assert.notEqual((await inode(join(v2, 'run.sh'))).ino, (await inode(join(f.installed, 'run.sh'))).ino);
      assert.equal((await stat(join(f.installed, 'run.sh'))).mode & 0o7777, 0o700);
      assert.equal((await stat(join(v2, 'run.sh'))).mode & 0o7777, 0o755);
      assert.ok((await lstat(join(v2, 'ro.txt'))).isFile());
      assert.notEqual(
        (await inode(join(v2, 'ro.txt'))).ino,
        (await inode(join(f.dir, 'outside-ro.txt'))).ino,
      );
      assert.equal((await inode(join(f.dir, 'outside-ro.txt'))).nlink, 1);
    });
  });

  void it('the same failures in copy mode leave no copy behind and write from chunks', async () => {
    await withReleases(async (f) => {
      await writeFile(join(f.installed, 'a.txt'), 'ALPHA\n');
      await rm(join(f.installed, 'lib/deep/d.txt'));
      await symlink(join(f.dir, 'src1/lib/deep/d.txt'), join(f.installed, 'lib/deep/d.txt'));
      const stats = await stage(f, { reuseMode: 'copy' });
      assert.equal(stats.reused, UNCHANGED.length - 2);
      assert.equal(stats.reuseFallbacks, 2);
    });
  });

  void it('never follows a directory of the installed tree replaced by a symlink to outside', async () => {
    await withReleases(async (f) => {
      // The same files, so their content would verify: still not taken from there.
      execFileSync('cp', ['-a', join(f.installed, 'lib'), join(f.dir, 'outside-lib')]);
      await rename(join(f.installed, 'lib'), join(f.dir, 'old-lib'));
      await symlink(join(f.dir, 'outside-lib'), join(f.installed, 'lib'));
      const stats = await stage(f);
      // lib/big.bin and lib/deep/d.txt are not candidates at all (their directory is not real).
      assert.equal(stats.reused, UNCHANGED.length - 2);
      assert.equal(stats.reuseFallbacks, 0);
      for (const path of ['big.bin', 'deep/d.txt'])
        assert.equal((await inode(join(f.dir, 'outside-lib', path))).nlink, 1, path);
    });
  });

  void it('a FIFO where a file was does not block staging', async () => {
    await withReleases(async (f) => {
      await rm(join(f.installed, 'a.txt'));
      execFileSync('mkfifo', [join(f.installed, 'a.txt')]);
      const stats = await stage(f);
      assert.equal(stats.reuseFallbacks, 1);
    });
  });

  void it('tries the next candidate, across several reuse trees', async () => {
    await withReleases(async (f) => {
      const second = join(f.dir, 'releases/v1-again');
      await materialize(f.store, f.v1, second, { durability: 'none' });
      await writeFile(join(f.installed, 'a.txt'), 'ALPHA\n');
      const target = join(f.dir, 'releases/v2');
      const stats = await materialize(f.store, f.v2, target, {
        reuse: [
          { dir: f.installed, root: f.v1 },
          { dir: second, root: f.v1 },
        ],
        durability: 'none',
      });
      assert.equal(stats.reused, UNCHANGED.length);
      assert.equal(stats.reuseFallbacks, 0);
      assert.equal((await inode(join(target, 'a.txt'))).ino, (await inode(join(second, 'a.txt'))).ino);
      assert.deepEqual(await verifyTree(f.store, target, f.v2), { ok: true, problems: [] });
    });
  });

  void it('ignores reuse trees that are missing, not directories, or whose root is unknown', async () => {
    await withReleases(async (f) => {
      await writeFile(join(f.dir, 'a-file'), '');
      const stats = await materialize(f.store, f.v2, join(f.dir, 'releases/v2'), {
        reuse: [
          { dir: join(f.dir, 'missing'), root: f.v1 },
          { dir: join(f.dir, 'a-file'), root: f.v1 },
          { dir: f.installed, root: 'ab'.repeat(32) },
          { dir: f.installed, root: 'not an id' },
        ],
        durability: 'none',
      });
      assert.equal(stats.reused, 0);
      assert.equal(stats.bytesWritten, f.v2Bytes);
    });
  });

  void it('a failure mid-way removes the partial tree and leaves the old one as it was', async () => {
    await withReleases(async (f) => {
      const changed = (await f.store.getObject(await fileId(f, 'lib/deep/c.txt'))).toString();
      const badChunk = (JSON.parse(changed) as { chunks: { id: string }[] }).chunks[0]!.id;
      const reader: StoreReader = {
        getObject: (id) => f.store.getObject(id),
        getChunk: (id) => (id === badChunk ? Promise.resolve(Buffer.from('forged')) : f.store.getChunk(id)),
      };
      const target = join(f.dir, 'releases/v2');
      await assert.rejects(
        materialize(reader, f.v2, target, { reuse: [{ dir: f.installed, root: f.v1 }], durability: 'none' }),
        (error: unknown) => {
          assert.ok(error instanceof FlotillaError);
          assert.equal(error.code, 'FLT_HASH_MISMATCH');
          assert.equal((error.details as { path: string }).path, 'lib/deep/c.txt');
          return true;
        },
      );
      assert.deepEqual((await readdir(join(f.dir, 'releases'))).sort(), ['v1']);
      for (const path of UNCHANGED) assert.equal((await inode(join(f.installed, path))).nlink, 1, path);
      assert.deepEqual(await verifyTree(f.store, f.installed, f.v1), { ok: true, problems: [] });
    });
  });

  void it('reports the first failure in tree order whatever finishes first', async () => {
    await withTempDir(async (dir) => {
      await mkdir(join(dir, 'src'));
      for (let i = 0; i < 20; i++)
        await writeFile(join(dir, 'src', `f${String(i).padStart(2, '0')}`), `file ${i}`);
      const store = new MemoryStore();
      const { root } = await buildTree(join(dir, 'src'), { sink: store });
      let calls = 0;
      const reader: StoreReader = {
        getObject: (id) => store.getObject(id),
        // Later files fail sooner: f00 fails last.
        getChunk: async () => {
          const delay = 20 - calls++;
          await new Promise((resolve) => setTimeout(resolve, delay));
          return Buffer.from('forged');
        },
      };
      await assert.rejects(
        materialize(reader, root, join(dir, 'out'), { concurrency: 8 }),
        (error: unknown) => {
          assert.equal(((error as FlotillaError).details as { path: string }).path, 'f00');
          return true;
        },
      );
      assert.deepEqual(await readdir(dir), ['src']);
    });
  });
});

async function fileId(f: Fixture, path: string): Promise<string> {
  let id = f.v2;
  const parts = path.split('/');
  for (const [i, name] of parts.entries()) {
    const dir = JSON.parse((await f.store.getObject(id)).toString()) as {
      entries: { name: string; hash: string }[];
    };
    id = dir.entries.find((e) => e.name === name)!.hash;
    if (i === parts.length - 1) return id;
  }
  throw new Error('unreachable');
}

void describe('materialize durability', () => {
  for (const options of [
    { durability: 'file' },
    { durability: 'filesystem' },
    { durability: 'none' },
    { fsync: true },
    { fsync: false },
    { durability: 'filesystem', reuseMode: 'copy' },
    { durability: 'file', reuseMode: 'copy' },
  ] as MaterializeOptions[]) {
    void it(`stages a verified tree with ${JSON.stringify(options)}`, async () => {
      await withReleases(async (f) => {
        const stats = await stage(f, options);
        assert.equal(stats.reused, UNCHANGED.length);
      });
    });
  }

  void it('without syncfs (no `sync --file-system`), fsyncs every file and directory instead', async () => {
    await withReleases(async (f) => {
      const bin = join(f.dir, 'bin');
      await mkdir(bin);
      await writeFile(join(bin, 'sync'), '#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\nexit 1\n');
      await chmod(join(bin, 'sync'), 0o755);
      const path = process.env.PATH;
      process.env.PATH = `${bin}:${path ?? ''}`;
      try {
        await stage(f, { durability: 'filesystem' });
        await stage(f, { durability: 'filesystem', reuse: [] }, 'v2-no-reuse');
      } finally {
        process.env.PATH = path;
      }
      assert.equal((await readFile(join(bin, 'calls'), 'utf8')).split('\n').filter(Boolean).length, 2);
      assert.equal((await stat(join(f.dir, 'releases/v2'))).mode & 0o777, 0o755);
    });
  });

  void it('refuses unknown options', async () => {
    await withReleases(async (f) => {
      for (const options of [
        { durability: 'sometimes' },
        { reuseMode: 'symlink' },
        { concurrency: 0 },
        { concurrency: 1.5 },
        { concurrency: 65 },
      ])
        await assert.rejects(materialize(f.store, f.v2, join(f.dir, 'out'), options as MaterializeOptions), {
          code: 'FLT_VALIDATION',
        });
      assert.deepEqual((await readdir(join(f.dir, 'releases'))).sort(), ['v1']);
      await assert.rejects(lstat(join(f.dir, 'out')), { code: 'ENOENT' });
    });
  });

  void it('writes one file at a time with concurrency 1', async () => {
    await withReleases(async (f) => {
      const stats = await stage(f, { concurrency: 1 });
      assert.equal(stats.reused, UNCHANGED.length);
    });
  });

  void it('links a whole file offered by id before any reuse tree; one that does not verify is passed over', async () => {
    await withReleases(async (f) => {
      // The changed file, kept whole outside any tree (as the agent keeps files rebuilt from deltas).
      const whole = join(f.dir, 'whole-c');
      await writeFile(whole, 'charlie v2, longer\n');
      await chmod(whole, (await stat(join(f.dir, 'src2/lib/deep/c.txt'))).mode & 0o7777);
      const wrong = join(f.dir, 'whole-new');
      await writeFile(wrong, 'not what v2 says\n');
      const paths = new Map<string, string>();
      for await (const { path, entry } of walkTree(f.store, f.v2))
        if (entry.kind === 'file') paths.set(entry.hash!, path);
      const held: Record<string, string> = { 'lib/deep/c.txt': whole, 'new.txt': wrong };
      const stats = await stage(f, { wholeFiles: (id) => held[paths.get(id) ?? ''] });
      assert.equal(stats.reused, UNCHANGED.length + 1);
      assert.equal(stats.reuseFallbacks, 1, 'new.txt: its whole file did not verify');
      assert.equal((await inode(join(f.dir, 'releases/v2/lib/deep/c.txt'))).ino, (await inode(whole)).ino);
      assert.equal((await inode(join(f.dir, 'releases/v2/new.txt'))).nlink, 1);
    });
  });
});

void describe('materialize with a reader that holds parsed objects', () => {
  /** The store, also giving parsed objects (counted), as the agent's chunk cache does. */
  function parsedReader(store: MemoryStore) {
    const reader = {
      parsedCalls: 0,
      getObject: (id: string) => store.getObject(id),
      getChunk: (id: string) => store.getChunk(id),
      getTreeObject: async (id: string) => {
        reader.parsedCalls++;
        return parseObject(await store.getObject(id), { expectedId: id });
      },
    };
    return reader;
  }

  void it('takes them with the default limits, never with other limits', async () => {
    await withReleases(async (f) => {
      const reader = parsedReader(f.store);
      await materialize(reader, f.v2, join(f.dir, 'a'), { durability: 'none' });
      assert.ok(reader.parsedCalls >= 8, `${reader.parsedCalls} parsed objects used`);
      assert.deepEqual(await verifyTree(f.store, join(f.dir, 'a'), f.v2), { ok: true, problems: [] });
      reader.parsedCalls = 0;
      await materialize(reader, f.v2, join(f.dir, 'b'), { durability: 'none', limits: { maxDepth: 10 } });
      assert.equal(reader.parsedCalls, 0);
      // Stricter limits are still enforced on the bytes.
      await assert.rejects(
        materialize(reader, f.v2, join(f.dir, 'c'), { durability: 'none', limits: { maxDepth: 1 } }),
        (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_LIMIT_EXCEEDED',
      );
    });
  });
});
