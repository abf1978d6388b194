// Compression ratio and speed of the chunk codecs on real files, chunked as releases are
// (docs/store.md "Codec"). Run: `taskset -c 0 node bench/dist/store/codec.js [MiB] [dir ...]`.
// Default input: up to 200 MiB from the repository's node_modules and /usr/lib/x86_64-linux-gnu.
import { readFileSync, readdirSync, lstatSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chunkBuffer, decodeFrame, encodeFrame } from '@flotilla/store';
import type { EncodeOptions } from '@flotilla/store';
import { machineLine, mbPerSecond, bestSeconds } from './machine.js';

const limitBytes = Number(process.argv[2] ?? 200) * 1024 * 1024;
const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');
const dirs =
  process.argv.length > 3
    ? process.argv.slice(3)
    : [join(repoRoot, 'node_modules'), '/usr/lib/x86_64-linux-gnu'];

function* filesUnder(dir: string): Generator<string> {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    const info = lstatSync(path);
    if (info.isDirectory()) yield* filesUnder(path);
    else if (info.isFile() && info.size > 0) yield path;
  }
}

// Each directory contributes up to an equal share, so the sample mixes text (JS) and binaries (.so).
const chunks: Buffer[] = [];
let total = 0;
for (const dir of dirs) {
  let fromDir = 0;
  for (const path of filesUnder(dir)) {
    if (fromDir >= limitBytes / dirs.length) break;
    const content = readFileSync(path);
    for (const { offset, length } of chunkBuffer(content))
      chunks.push(content.subarray(offset, offset + length));
    fromDir += content.length;
  }
  total += fromDir;
}

const RUNS = 3;
const codecs: [string, EncodeOptions][] = [
  ['zstd 1', { codec: 'zstd', level: 1 }],
  ['zstd 3 (default)', { codec: 'zstd', level: 3 }],
  ['zstd 6', { codec: 'zstd', level: 6 }],
  ['brotli 4', { codec: 'brotli', level: 4 }],
  ['brotli 5', { codec: 'brotli', level: 5 }],
  ['gzip 6', { codec: 'gzip', level: 6 }],
];

console.log(`store/codec · ${machineLine()}`);
console.log(`input: ${(total / 2 ** 20).toFixed(0)} MiB in ${chunks.length} chunks from ${dirs.join(', ')}`);
console.log('| codec | ratio | compress MB/s | decompress MB/s |');
console.log('| --- | ---: | ---: | ---: |');
for (const [name, options] of codecs) {
  let frames: Buffer[] = [];
  const encode = bestSeconds(RUNS, () => {
    frames = chunks.map((chunk) => encodeFrame(chunk, options));
  });
  const decode = bestSeconds(RUNS, () => {
    for (const frame of frames) decodeFrame(frame);
  });
  const stored = frames.reduce((sum, frame) => sum + frame.length, 0);
  console.log(
    `| ${name} | ${(total / stored).toFixed(2)} | ${mbPerSecond(total, encode)} | ${mbPerSecond(total, decode)} |`,
  );
}
