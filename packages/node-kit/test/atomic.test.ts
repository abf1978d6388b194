import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createFileExclusive, writeFileAtomic, writeFileAtomicSync } from '../src/index.js';
import type { AtomicFileIo, AtomicFileIoSync } from '../src/index.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'flt-atomic-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The real node:fs/promises, noting each call and which path each fsync was for. */
function recordingIo(calls: string[]): AtomicFileIo {
  return {
    mkdir: (path, opts) => fsp.mkdir(path, opts),
    open: async (path, flags, mode) => {
      const handle = await fsp.open(path, flags, mode);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        await sync();
        calls.push(`fsync ${path}`);
      };
      return handle;
    },
    rename: async (from, to) => {
      await fsp.rename(from, to);
      calls.push(`rename ${to}`);
    },
    link: async (existing, path) => {
      await fsp.link(existing, path);
      calls.push(`link ${path}`);
    },
    unlink: (path) => fsp.unlink(path),
  };
}

function recordingIoSync(calls: string[]): AtomicFileIoSync {
  const paths = new Map<number, string>();
  return {
    mkdirSync: (path, opts) => fs.mkdirSync(path, opts),
    openSync: (path, flags, mode) => {
      const fd = fs.openSync(path, flags, mode);
      paths.set(fd, path);
      return fd;
    },
    writeSync: (fd, bytes, offset, length) => fs.writeSync(fd, bytes, offset, length),
    fsyncSync: (fd) => {
      fs.fsyncSync(fd);
      calls.push(`fsync ${paths.get(fd)}`);
    },
    closeSync: (fd) => fs.closeSync(fd),
    renameSync: (from, to) => {
      fs.renameSync(from, to);
      calls.push(`rename ${to}`);
    },
    linkSync: (existing, path) => {
      fs.linkSync(existing, path);
      calls.push(`link ${path}`);
    },
    unlinkSync: (path) => fs.unlinkSync(path),
  };
}

/** The fsyncs after the file reached its place: the directory's must be among them. */
function afterPlacing(calls: string[], verb: 'rename' | 'link', path: string): string[] {
  const at = calls.indexOf(`${verb} ${path}`);
  assert.ok(at >= 0, `${verb} ${path} happened: ${calls.join(', ')}`);
  assert.ok(
    calls.slice(0, at).some((c) => c.startsWith('fsync ') && c.endsWith('.tmp')),
    `the temp file was fsynced before it was put in place: ${calls.join(', ')}`,
  );
  return calls.slice(at + 1);
}

void test('writeFileAtomic replaces the file, fsyncs it, then fsyncs the directory', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'state.json');
  assert.equal(await writeFileAtomic(path, 'one'), 'written');
  const calls: string[] = [];
  assert.equal(await writeFileAtomic(path, 'two', { mode: 0o640 }, recordingIo(calls)), 'written');
  assert.equal(readFileSync(path, 'utf8'), 'two');
  assert.equal(statSync(path).mode & 0o777, 0o640);
  assert.deepEqual(afterPlacing(calls, 'rename', path), [`fsync ${dir}`]);
  assert.deepEqual(readdirSync(dir), ['state.json'], 'no temp file is left');
});

void test('writeFileAtomic with existing: keep never overwrites and fsyncs the directory it added to', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'root.json');
  const calls: string[] = [];
  assert.equal(await writeFileAtomic(path, 'first', { existing: 'keep' }, recordingIo(calls)), 'written');
  assert.deepEqual(afterPlacing(calls, 'link', path), [`fsync ${dir}`]);
  assert.equal(await writeFileAtomic(path, 'second', { existing: 'keep' }), 'exists');
  assert.equal(readFileSync(path, 'utf8'), 'first');
  assert.equal(await createFileExclusive(join(dir, 'sub'), 'k', Buffer.from('x'), 0o600), 'created');
  assert.equal(statSync(join(dir, 'sub')).mode & 0o777, 0o700);
  assert.equal(await createFileExclusive(join(dir, 'sub'), 'k', Buffer.from('y'), 0o600), 'exists');
  assert.deepEqual(readdirSync(dir).sort(), ['root.json', 'sub']);
});

void test('writeFileAtomic throws the file system error and leaves no temp file', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(writeFileAtomic(join(dir, 'missing', 'f'), 'x'), { code: 'ENOENT' });
  fs.mkdirSync(join(dir, 'taken'));
  await assert.rejects(writeFileAtomic(join(dir, 'taken'), 'x'), (e: NodeJS.ErrnoException) =>
    ['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(e.code ?? ''),
  );
  assert.deepEqual(readdirSync(dir).sort(), ['taken']);
});

void test('writeFileAtomicSync replaces the file and fsyncs the directory after the rename', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'device.key');
  const calls: string[] = [];
  assert.equal(writeFileAtomicSync(path, 'one', {}, recordingIoSync(calls)), 'written');
  assert.deepEqual(afterPlacing(calls, 'rename', path), [`fsync ${dir}`]);
  writeFileAtomicSync(path, new Uint8Array([116, 119, 111]));
  assert.equal(readFileSync(path, 'utf8'), 'two');
  assert.equal(writeFileAtomicSync(path, 'three', { existing: 'keep' }), 'exists');
  assert.equal(readFileSync(path, 'utf8'), 'two');
  assert.throws(() => writeFileAtomicSync(join(dir, 'missing', 'f'), 'x'), { code: 'ENOENT' });
  assert.deepEqual(readdirSync(dir), ['device.key']);
});
