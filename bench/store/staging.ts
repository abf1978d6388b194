// Staging a release: `materialize` of v2 with and without reuse of the installed v1, against
// `ostree checkout -U --fsync=true` of the same v2 from a bare-user repository holding both (what
// bench/delta measures as OSTree's checkout). docs/store.md "Staging with reuse".
// Usage: node bench/dist/store/staging.js [data set: npm | deb | bin] [runs, default 5]
// Trees come from /tmp/flotilla-bench-cache/<set>-v1 and -v2 (bench/delta/setup.sh fetches them).
// Each figure is the median of the runs, with a warm page cache; every result is checked with verifyTree.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FsStore, StampIndex, buildTree, materialize, verifyTree } from '@flotilla/store';
import type { MaterializeOptions, MaterializeStats } from '@flotilla/store';
import { machineLine } from './machine.js';

const execFileAsync = promisify(execFile);
const set = process.argv[2] ?? 'npm';
const runs = Number(process.argv[3] ?? 5);
if (!['npm', 'deb', 'bin'].includes(set) || !Number.isInteger(runs) || runs < 1)
  throw new Error('usage: staging.js [npm|deb|bin] [runs]');
const cache = process.env.FLOTILLA_BENCH_CACHE ?? '/tmp/flotilla-bench-cache';
const v1Dir = join(cache, `${set}-v1`);
const v2Dir = join(cache, `${set}-v2`);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const work = await mkdtemp(join(tmpdir(), 'flt-staging-'));
try {
  const store = await FsStore.open({ root: join(work, 'store'), fsync: false });
  const v1 = await buildTree(v1Dir, { sink: store });
  const v2 = await buildTree(v2Dir, { sink: store });
  const installed = join(work, 'releases', 'v1');
  execFileSync('mkdir', ['-p', join(work, 'releases')]);
  const { stamps } = await materialize(store, v1.root, installed, {
    durability: 'filesystem',
    recordStamps: true,
  });
  const reuse = [{ dir: installed, root: v1.root }];
  // What the agent trusts (stageVerify: stamp): v1's files were written by materialize, so stamped.
  const trusted = new StampIndex(stamps);

  const variants: [string, MaterializeOptions][] = [
    ['no reuse, fsync per file (before; default)', {}],
    ['no reuse, durability filesystem', { durability: 'filesystem' }],
    ['reuse link, durability file', { reuse, durability: 'file' }],
    ['reuse link, durability filesystem', { reuse, durability: 'filesystem' }],
    ['reuse copy, durability filesystem', { reuse, reuseMode: 'copy', durability: 'filesystem' }],
    ['reuse link, durability none', { reuse, durability: 'none' }],
    ['reuse link, filesystem, trusted stamps', { reuse, durability: 'filesystem', trusted }],
    ['reuse link, none, trusted stamps', { reuse, durability: 'none', trusted }],
  ];
  console.log(machineLine());
  console.log(
    `${set}: v2 ${v2.stats.files} files, ${v2.stats.dirs} dirs, ${(v2.stats.bytes / 1e6).toFixed(1)} MB; median of ${runs}`,
  );
  let n = 0;
  for (const [name, options] of variants) {
    const times: number[] = [];
    let last: MaterializeStats | undefined;
    for (let i = 0; i < runs; i++) {
      const target = join(work, 'releases', `stage-${n++}`);
      times.push(await seconds(async () => (last = await materialize(store, v2.root, target, options))));
      const verified = await verifyTree(store, target, v2.root);
      if (!verified.ok) throw new Error(`${name}: ${JSON.stringify(verified.problems.slice(0, 3))}`);
      execFileSync('chmod', ['-R', 'u+w', target]);
      await rm(target, { recursive: true });
    }
    console.log(
      `${name.padEnd(44)} ${median(times).toFixed(3)} s  ${JSON.stringify({ ...last, stamps: undefined })}`,
    );
  }

  const repo = join(work, 'ostree');
  execFileSync('ostree', [`--repo=${repo}`, 'init', '--mode=bare-user']);
  const commit = (dir: string) =>
    execFileSync('ostree', [`--repo=${repo}`, 'commit', '--branch=bench', '--no-xattrs', dir])
      .toString()
      .trim();
  commit(v1Dir);
  const c2 = commit(v2Dir);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const target = join(work, `co-${i}`);
    times.push(
      await seconds(() =>
        execFileAsync('ostree', [`--repo=${repo}`, 'checkout', '-U', '--fsync=true', c2, target]),
      ),
    );
    execFileSync('chmod', ['-R', 'u+w', target]);
    await rm(target, { recursive: true });
  }
  console.log(`${'ostree checkout -U --fsync=true'.padEnd(44)} ${median(times).toFixed(3)} s`);
} finally {
  execFileSync('chmod', ['-R', 'u+w', work]);
  await rm(work, { recursive: true, force: true });
}
