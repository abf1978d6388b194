/**
 * Flotilla's delta delivery against OSTree on real release pairs (bench/README.md, "delta"): bytes on
 * the wire and wall time of a full download, a Flotilla update, an OSTree pull and an OSTree static
 * delta, and the zstd --patch-from size as the lower bound, measured side by side in one run.
 *
 *   sh bench/delta/setup.sh && npx tsc -b bench && node bench/dist/delta/run.js [--only NAME] [--reps N] [--json]
 *
 * Update times are the median of `--reps` runs on each side (default 3): a fresh device (client
 * repository) installs v1, then is timed installing (pulling and checking out) v2.
 *
 * Everything runs with the malloc setting the agent's systemd unit ships
 * (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, docs/agent.md): the bench re-runs itself with it, so
 * the device, the server and every ostree process get it alike. `--no-hugetlb` measures without.
 */
import { spawnSync } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { benchCache, dataSets } from './data-sets.js';
import { measureFlotilla } from './flotilla-measure.js';
import { startFlotillaServer } from './flotilla-server.js';
import { lowerBound } from './lower-bound.js';
import { measureOstree } from './ostree-measure.js';
import { bytesTable, targets, timeTable } from './table.js';
import type { SetResult } from './table.js';
import { treeIds } from './tree-ids.js';

const { values: opts } = parseArgs({
  options: {
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
    reps: { type: 'string', default: '3' },
    'no-hugetlb': { type: 'boolean', default: false },
  },
});

const TUNABLE = 'glibc.malloc.hugetlb=1';

/** Re-runs this process with the agent unit's malloc setting unless it has it (or was told not to). */
function withAgentMalloc(): boolean {
  if (opts['no-hugetlb'] || process.env.GLIBC_TUNABLES?.includes(TUNABLE)) return false;
  const tunables = [process.env.GLIBC_TUNABLES, TUNABLE].filter(Boolean).join(':');
  const child = spawnSync(process.execPath, process.argv.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, GLIBC_TUNABLES: tunables },
  });
  process.exitCode = child.status ?? 1;
  return true;
}

async function main(): Promise<void> {
  const sets = dataSets(benchCache()).filter((s) => opts.only === undefined || s.name === opts.only);
  if (sets.length === 0) throw new Error(`no data set named ${String(opts.only)}`);
  const reps = Number(opts.reps);
  if (!Number.isInteger(reps) || reps < 1) throw new Error('--reps must be a positive integer');
  const server = await startFlotillaServer();
  const results: SetResult[] = [];
  try {
    for (const set of sets) {
      console.error(`${set.name}: ${set.description}`);
      const flotilla = await measureFlotilla(server, set.name, set.v1, set.v2, reps);
      console.error(`  flotilla done`);
      const ostree = await measureOstree(set.v1, set.v2, reps);
      console.error(`  ostree done`);
      const bound = await lowerBound(set.v1, set.v2);
      const v2Bytes = (await treeIds(set.v2)).bytes;
      results.push({ name: set.name, v2Bytes, flotilla, ostree, ...bound });
    }
  } finally {
    await server.stop();
  }
  if (opts.json) {
    console.log(JSON.stringify({ results, targets: targets(results) }, null, 2));
    return;
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const malloc = process.env.GLIBC_TUNABLES ? ` · GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}` : '';
  console.log(
    `${new Date().toISOString().slice(0, 10)} · ${cpu} (${cpus().length} vCPU, ${Math.round(totalmem() / 2 ** 30)} GiB) · Node ${process.version} · Linux ${release()}${malloc}\n`,
  );
  console.log(bytesTable(results), '\n');
  console.log(timeTable(results), '\n');
  for (const t of targets(results)) console.log(`- ${t.met ? 'met' : '**not met**'}: ${t.target}`);
}

if (!withAgentMalloc())
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
