/**
 * Runs every benchmark in turn and prints its figures: `npm run bench`. Each benchmark is its own
 * program (see bench/README.md); they run one after another so that they do not compete for cores.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const programs = [
  ['store/chunking.js', '256'],
  ['store/codec.js'],
  ['server/poll.js', '--devices', '500', '--seconds', '15'],
  // Image size: FLT_BENCH_GATEWAY_MB (default 500).
  ['gateway/import.js'],
];
const pinned = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
let failed = 0;
for (const [program, ...args] of programs) {
  console.log(`\n=== ${program} ${args.join(' ')}`);
  const file = join(here, program!);
  // The store benchmarks measure one core; the server benchmark pins its own server process.
  const cmd =
    pinned && program!.startsWith('store/') ? ['taskset', '-c', '0', process.execPath] : [process.execPath];
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), file, ...args], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
