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
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import {
  MemoryStore,
  RACY_MARGIN_MS,
  StampIndex,
  buildTree,
  decodeStamps,
  encodeStamps,
  materialize,
  parseObject,
  verifyTree,
  walkTree,
} from '../../src/index.js';
import type { FileStamp, MaterializeOptions, MaterializeStats, StoreReader } from '../../src/index.js';
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

async function exists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => null)) !== null;
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
        trustedByStamp: 0,
        patched: 0,
        bytesPatched: 0,
        bytesReadBack: 0,
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

void describe('materialize trusting stamps', () => {
  /** Sets every file of the installed tree's modification time to an hour ago (not racy). */
  async function ageInstalled(f: Fixture): Promise<void> {
    const hourAgo = new Date(Date.now() - 3600_000);
    for (const path of UNCHANGED) await utimes(join(f.installed, path), hourAgo, hourAgo);
  }

  /** File-object id by path in `root`. */
  async function fileIds(store: MemoryStore, root: string): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    for await (const { path, entry } of walkTree(store, root))
      if (entry.kind === 'file') ids.set(path, entry.hash!);
    return ids;
  }

  /** Stages v2 from v1 recording stamps; then v2 is the installed tree and its stamps are returned. */
  async function stampedV2(f: Fixture): Promise<FileStamp[]> {
    await ageInstalled(f);
    const stats = await stage(f, { recordStamps: true });
    assert.equal(stats.trustedByStamp, 0);
    return stats.stamps!;
  }

  /** Stages v2 again, as `name`, from the staged v2 with `stamps` trusted. */
  function restage(f: Fixture, stamps: FileStamp[], name: string, options: MaterializeOptions = {}) {
    return stage(
      f,
      {
        reuse: [{ dir: join(f.dir, 'releases/v2'), root: f.v2 }],
        trusted: new StampIndex(stamps),
        ...options,
      },
      name,
    );
  }

  void it('stamps every file it links or writes; files it writes get a time before the racy margin', async () => {
    await withReleases(async (f) => {
      const start = Date.now();
      const stamps = await stampedV2(f);
      const ids = await fileIds(f.store, f.v2);
      assert.equal(ids.size, 8);
      assert.deepEqual(stamps.map((s) => s.fileId).sort(), [...ids.values()].sort());
      for (const [path, fileId] of ids) {
        const info = await lstat(join(f.dir, 'releases/v2', path), { bigint: true });
        const stamp = stamps.find((s) => s.ino === info.ino);
        assert.deepEqual(
          stamp,
          {
            fileId,
            dev: info.dev,
            ino: info.ino,
            size: Number(info.size),
            mode: Number(info.mode & 0o7777n),
            mtimeNs: info.mtimeNs,
          },
          path,
        );
      }
      const written = await lstat(join(f.dir, 'releases/v2/new.txt'));
      assert.ok(written.mtimeMs < start - RACY_MARGIN_MS, 'a written file is backdated past the racy margin');
    });
  });

  void it('does not stamp a file modified within the racy margin', async () => {
    await withReleases(async (f) => {
      await ageInstalled(f);
      const recent = new Date(Date.now() - RACY_MARGIN_MS / 2);
      await utimes(join(f.installed, 'a.txt'), recent, recent);
      const stats = await stage(f, { recordStamps: true });
      assert.equal(stats.reused, UNCHANGED.length, 'still verified by content and linked');
      assert.equal(stats.stamps!.length, 8 - 1, 'every file but a.txt (written files included)');
    });
  });

  void it('links the files its stamps vouch for without reading them', async () => {
    await withReleases(async (f) => {
      const stamps = await stampedV2(f);
      const stats = await restage(f, stamps, 'v3', { recordStamps: true });
      assert.equal(stats.trustedByStamp, 8, 'the files written for v2 too');
      assert.equal(stats.reused, 8);
      assert.deepEqual(
        stats.stamps!.map((s) => s.ino).sort(),
        stamps.map((s) => s.ino).sort(),
        'the same inodes are stamped again',
      );
      // Not read: content changed with size, mode and modification time kept (the documented
      // blind spot, as in git) is linked as it is.
      const a = join(f.dir, 'releases/v2/a.txt');
      const before = await lstat(a);
      await writeFile(a, 'ALPHA\n');
      await utimes(a, before.atime, before.mtime);
      const target = join(f.dir, 'releases/v4');
      const blind = await materialize(f.store, f.v2, target, {
        reuse: [{ dir: join(f.dir, 'releases/v2'), root: f.v2 }],
        trusted: new StampIndex(stamps),
        durability: 'none',
      });
      assert.equal(blind.trustedByStamp, 8);
      assert.equal(await readFile(join(target, 'a.txt'), 'utf8'), 'ALPHA\n');
    });
  });

  void it('verifies by content a file whose stamp no longer matches, and writes a changed one from chunks', async () => {
    await withReleases(async (f) => {
      const stamps = await stampedV2(f);
      const v2 = join(f.dir, 'releases/v2');
      // Content written in place (new mtime): same size, other bytes.
      await writeFile(join(v2, 'a.txt'), 'ALPHA\n');
      // Same content, but another inode with the stamped modification time forged.
      const old = await lstat(join(v2, 'lib/deep/d.txt'));
      await rm(join(v2, 'lib/deep/d.txt'));
      await writeFile(join(v2, 'lib/deep/d.txt'), 'delta\n');
      await utimes(join(v2, 'lib/deep/d.txt'), old.atime, old.mtime);
      // Mode changed: neither the stamp nor the content check accepts it.
      await chmod(join(v2, 'run.sh'), 0o700);
      const stats = await restage(f, stamps, 'v3');
      assert.equal(stats.trustedByStamp, 8 - 3);
      assert.equal(stats.reused, 8 - 2, 'd.txt verified by content');
      assert.equal(stats.reuseFallbacks, 2, 'a.txt and run.sh written from chunks');
    });
  });

  /** Resolves once `path` exists (materialize running in the background got there). */
  async function appears(path: string): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      if (await exists(path)) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(`${path} never appeared`);
  }

  void it('with contents pending: links what stamps vouch for, waits for the rest, then trusts the stamps they bring', async () => {
    await withReleases(async (f) => {
      const stamps = await stampedV2(f);
      const ids = await fileIds(f.store, f.v2);
      const late = stamps.filter((s) => s.fileId === ids.get('a.txt'));
      assert.equal(late.length, 1);
      let arrive!: (stamps: FileStamp[]) => void;
      const pending = new Promise<FileStamp[]>((resolve) => (arrive = resolve));
      const staging = restage(
        f,
        stamps.filter((s) => !late.includes(s)),
        'v3',
        { pending },
      );
      const target = join(f.dir, 'releases/v3');
      await appears(join(target, 'lib/deep/d.txt'));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await exists(join(target, 'a.txt')), false, 'a file with no stamp waits for the contents');
      arrive(late);
      const stats = await staging;
      assert.equal(stats.trustedByStamp, 8, 'a.txt linked on the stamp that arrived');
      assert.equal(
        (await inode(join(target, 'a.txt'))).ino,
        (await inode(join(f.dir, 'releases/v2/a.txt'))).ino,
      );
    });
  });

  void it('with contents pending that fail: removes what it made and throws their error', async () => {
    await withReleases(async (f) => {
      const stamps = await stampedV2(f);
      const ids = await fileIds(f.store, f.v2);
      let fail!: (error: unknown) => void;
      const pending = new Promise<FileStamp[]>((_resolve, reject) => (fail = reject));
      const target = join(f.dir, 'releases/v3');
      const staging = materialize(f.store, f.v2, target, {
        reuse: [{ dir: join(f.dir, 'releases/v2'), root: f.v2 }],
        trusted: new StampIndex(stamps.filter((s) => s.fileId !== ids.get('a.txt'))),
        durability: 'none',
        pending,
      });
      await appears(join(target, 'lib/deep/d.txt'));
      fail(new FlotillaError('FLT_NETWORK', 'the download was cut'));
      await assert.rejects(staging, { code: 'FLT_NETWORK', message: 'the download was cut' });
      assert.equal(await exists(target), false);
    });
  });

  void it('ignores stamps with file durability, and in copy mode', async () => {
    await withReleases(async (f) => {
      const stamps = await stampedV2(f);
      assert.equal((await restage(f, stamps, 'v3', { durability: 'file' })).trustedByStamp, 0);
      assert.equal((await restage(f, stamps, 'v4', { reuseMode: 'copy' })).trustedByStamp, 0);
    });
  });

  void it('encodes and decodes stamps, refusing anything malformed', async () => {
    await withReleases(async (f) => {
      const stamps = await stampedV2(f);
      assert.deepEqual(decodeStamps(encodeStamps(stamps)), stamps);
      assert.deepEqual(decodeStamps(encodeStamps([])), []);
      const good = encodeStamps(stamps);
      const bad = [
        Buffer.alloc(0),
        Buffer.from('not stamps at all'),
        good.subarray(0, good.length - 1),
        Buffer.concat([good, Buffer.alloc(1)]),
        Buffer.from(good).fill(2, 4, 5),
      ];
      const hugeMode = Buffer.from(good);
      hugeMode.writeUInt32LE(0o10000, 12 + 64);
      bad.push(hugeMode);
      for (const bytes of bad) assert.throws(() => decodeStamps(bytes), { code: 'FLT_VALIDATION' });
      assert.throws(() => encodeStamps([{ ...stamps[0]!, fileId: 'x'.repeat(64) }]), {
        code: 'FLT_VALIDATION',
      });
    });
  });
});
