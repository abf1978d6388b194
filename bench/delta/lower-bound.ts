/**
 * The lower bound on update bytes: each tree as one tar (sorted names, fixed owner and mtime, so that
 * only content differs), and the size of `zstd -19 --long=27 --patch-from=v1.tar v2.tar`.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './exec.js';

async function tarTree(dir: string, file: string): Promise<void> {
  await run('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@0',
    '-cf',
    file,
    '-C',
    dir,
    '.',
  ]);
}

/** Bytes of the zstd patch from v1 to v2, and of v2's tar compressed alone at the same level. */
export async function lowerBound(
  v1Dir: string,
  v2Dir: string,
): Promise<{ patchBytes: number; tarZstBytes: number }> {
  const work = await mkdtemp(join(tmpdir(), 'flt-delta-zstd-'));
  try {
    const [v1, v2] = [join(work, 'v1.tar'), join(work, 'v2.tar')];
    await tarTree(v1Dir, v1);
    await tarTree(v2Dir, v2);
    const patch = join(work, 'v2.patch.zst');
    const whole = join(work, 'v2.tar.zst');
    await run('zstd', ['-q', '-19', '--long=27', `--patch-from=${v1}`, v2, '-o', patch]);
    await run('zstd', ['-q', '-19', '--long=27', '-T0', v2, '-o', whole]);
    return { patchBytes: (await stat(patch)).size, tarZstBytes: (await stat(whole)).size };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
