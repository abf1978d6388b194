/** The data sets `setup.sh` builds: two consecutive releases of real software trees each. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface DataSet {
  name: string;
  /** What the two trees are. */
  description: string;
  v1: string;
  v2: string;
}

export function benchCache(env: NodeJS.ProcessEnv = process.env): string {
  return env.FLOTILLA_BENCH_CACHE ?? '/tmp/flotilla-bench-cache';
}

export function dataSets(cache: string): DataSet[] {
  const sets: DataSet[] = [
    {
      name: 'npm',
      description:
        'typescript 5.8.3 → 5.9.3 with @babel/core + @babel/preset-env 7.26 and their dependencies',
      v1: join(cache, 'npm-v1'),
      v2: join(cache, 'npm-v2'),
    },
    {
      name: 'debian',
      description:
        'python3.11, libssl3/openssl, systemd, perl-modules .debs unpacked, bookworm → security update',
      v1: join(cache, 'deb-v1', 'root'),
      v2: join(cache, 'deb-v2', 'root'),
    },
    {
      name: 'binaries',
      description: '@esbuild/linux-x64 0.25.0 → 0.25.1 and @swc/core-linux-x64-gnu 1.11.21 → 1.11.22',
      v1: join(cache, 'bin-v1'),
      v2: join(cache, 'bin-v2'),
    },
  ];
  for (const set of sets)
    for (const dir of [set.v1, set.v2])
      if (!existsSync(dir)) throw new Error(`${dir} is missing: run bench/delta/setup.sh first`);
  return sets;
}
