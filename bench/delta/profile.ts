/**
 * Where a warm Flotilla update spends its time: the run.ts setup (real server, both trees pushed),
 * then N devices that each install v1 and update to v2 (deltas warm after the first), printing the
 * time between the phases each update reported; `--cpuprofile FILE` writes a V8 CPU profile of the
 * last update and prints the functions with the most self time.
 *
 *   node bench/dist/delta/profile.js [--set npm] [--reps 4] [--cpuprofile /tmp/warm.cpuprofile]
 *
 * A tool for finding the next thing to speed up, not a figure for bench/README.md (run.ts is).
 */
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchCache, dataSets } from './data-sets.js';
import { BenchDevice } from './flotilla-device.js';
import { startFlotillaServer } from './flotilla-server.js';
import { treeIds } from './tree-ids.js';

const { values: opts } = parseArgs({
  options: {
    set: { type: 'string', default: 'npm' },
    reps: { type: 'string', default: '4' },
    cpuprofile: { type: 'string' },
    top: { type: 'string', default: '30' },
  },
});

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The functions with the most self time, in ms. */
function selfTimes(profile: CpuProfile, top: number): string[] {
  const byNode = new Map<number, number>();
  profile.samples.forEach((node, i) =>
    byNode.set(node, (byNode.get(node) ?? 0) + (profile.timeDeltas[i] ?? 0)),
  );
  const byFunction = new Map<string, number>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const where =
      url === '' ? '' : ` ${url.replace(/^.*\/(packages|node_modules)\//, '$1/')}:${lineNumber + 1}`;
    const key = `${functionName || '(anonymous)'}${where}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + (byNode.get(node.id) ?? 0));
  }
  return [...byFunction]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => `${(us / 1000).toFixed(1).padStart(8)} ms  ${name}`);
}

async function main(): Promise<void> {
  const set = dataSets(benchCache()).find((s) => s.name === opts.set);
  if (set === undefined) throw new Error(`no data set named ${opts.set}`);
  const reps = Number(opts.reps);
  const server = await startFlotillaServer();
  const work = await mkdtemp(join(tmpdir(), 'flt-delta-profile-'));
  try {
    const v1 = await treeIds(set.v1);
    const v2 = await treeIds(set.v2);
    await server.push(set.v1, set.name, '1.0.0');
    await server.push(set.v2, set.name, '2.0.0');
    for (let rep = 1; rep <= reps; rep++) {
      const device = await BenchDevice.open(join(work, `d${rep}`), server);
      try {
        await device.install(set.name, '1.0.0', v1.root);
        const session = rep === reps && opts.cpuprofile !== undefined ? new Session() : null;
        if (session !== null) {
          session.connect();
          await session.post('Profiler.enable');
          await session.post('Profiler.setSamplingInterval', { interval: 100 });
          await session.post('Profiler.start');
        }
        const update = await device.install(set.name, '2.0.0', v2.root);
        const phases = device.phaseTimes().join(' · ');
        console.log(
          `rep ${rep}: fetch ${update.fetchMs} ms, stage + switch ${update.applyMs} ms, total ${update.totalMs} ms (${phases})`,
        );
        if (session !== null) {
          const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
          session.disconnect();
          await writeFile(opts.cpuprofile!, JSON.stringify(profile));
          console.log(`CPU profile of rep ${rep}: ${opts.cpuprofile}; most self time:`);
          for (const line of selfTimes(profile, Number(opts.top))) console.log(line);
        }
      } finally {
        await device.remove();
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
    await server.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
