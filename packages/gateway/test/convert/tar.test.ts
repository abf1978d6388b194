import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { convertImage } from '../../src/index.js';
import { run } from '../helpers/services.js';

void describe('layers written by GNU tar (pax format)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flt-gw-tar-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('keeps binary xattr values, long and non-ASCII names and large owner ids through to the squashfs', async () => {
    const src = join(dir, 'src');
    const longDir = join(src, 'd'.repeat(60), 'e'.repeat(60));
    await mkdir(longDir, { recursive: true });
    const longFile = join(longDir, 'f'.repeat(80));
    await writeFile(longFile, 'long\n');
    await writeFile(join(src, 'grüße.txt'), 'unicode\n');
    await writeFile(join(src, 'cap'), 'binary xattr\n');
    // A value with NUL, 0xff and bytes that are not UTF-8, as security.capability values are.
    await run('setfattr', ['-n', 'user.bin', '-v', '0x00ff01c3288000', join(src, 'cap')]);
    await run('chown', ['3000000:3000001', join(src, 'grüße.txt')]);
    const layer = join(dir, 'layer.tar');
    await run('tar', [
      '--format=posix',
      '--xattrs',
      '--xattrs-include=*',
      '--numeric-owner',
      '-C',
      src,
      '-cf',
      layer,
      '.',
    ]);

    const result = await convertImage([{ digest: 'sha256:gnu', path: layer }], { outDir: join(dir, 'out') });
    const x = join(dir, 'x');
    await run('unsquashfs', ['-no-progress', '-d', x, result.squashfsPath]);
    const { stdout } = await run('getfattr', [
      '--absolute-names',
      '-n',
      'user.bin',
      '-e',
      'hex',
      join(x, 'cap'),
    ]);
    assert.match(stdout, /user\.bin=0x00ff01c3288000/);
    assert.equal(await readFile(join(x, 'd'.repeat(60), 'e'.repeat(60), 'f'.repeat(80)), 'utf8'), 'long\n');
    const { stdout: owner } = await run('stat', ['-c', '%u:%g', join(x, 'grüße.txt')]);
    assert.equal(owner.trim(), '3000000:3000001');
  });
});
