// FastCDC and SHA-256 throughput on incompressible data (docs/store.md, bench/README.md "## store").
// Each figure is the best of 5 runs. Run pinned to one core: `taskset -c 0 node bench/dist/store/chunking.js [MiB]` (default 256 MiB).
import { createHash, randomFillSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { chunkBuffer, chunkStream, chunkerParams } from '@flotilla/store';
import { machineLine, mbPerSecond, bestSeconds } from './machine.js';

const mib = Number(process.argv[2] ?? 256);
if (!Number.isInteger(mib) || mib < 1) throw new Error('usage: chunking.js [MiB, a positive integer]');
const data = randomFillSync(Buffer.allocUnsafe(mib * 1024 * 1024));
const params = chunkerParams();
const RUNS = 5;

// Warm-up so that every figure is of optimized code, not of the first, interpreted iterations.
chunkBuffer(data.subarray(0, 32 * 1024 * 1024), params);

let chunkCount = 0;
const cdc = bestSeconds(RUNS, () => {
  chunkCount = chunkBuffer(data, params).length;
});
const spans = chunkBuffer(data, params);
const sha = bestSeconds(RUNS, () => {
  for (const { offset, length } of spans)
    createHash('sha256')
      .update(data.subarray(offset, offset + length))
      .digest();
});
const both = bestSeconds(RUNS, () => {
  for (const { offset, length } of chunkBuffer(data, params)) {
    createHash('sha256')
      .update(data.subarray(offset, offset + length))
      .digest();
  }
});

// The streaming path buildTree uses: 1 MiB reads, with cuts found across read edges.
async function streamedSeconds(): Promise<number> {
  const reads: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += 1024 * 1024)
    reads.push(data.subarray(offset, offset + 1024 * 1024));
  const start = process.hrtime.bigint();
  for await (const chunk of chunkStream(Readable.from(reads), params))
    createHash('sha256').update(chunk).digest();
  return Number(process.hrtime.bigint() - start) / 1e9;
}
let streamed = Infinity;
for (let run = 0; run < RUNS; run++) streamed = Math.min(streamed, await streamedSeconds());

console.log(`store/chunking · ${machineLine()}`);
console.log(
  `input: ${mib} MiB of random bytes; FastCDC min/avg/max ${params.minSize}/${params.avgSize}/${params.maxSize}`,
);
console.log(`chunks: ${chunkCount} (mean ${Math.round(data.length / chunkCount)} bytes)`);
console.log(`| measure | MB/s |`);
console.log(`| --- | ---: |`);
console.log(`| FastCDC alone | ${mbPerSecond(data.length, cdc)} |`);
console.log(`| SHA-256 alone (per chunk) | ${mbPerSecond(data.length, sha)} |`);
console.log(`| FastCDC + SHA-256 | ${mbPerSecond(data.length, both)} |`);
console.log(`| chunkStream + SHA-256 (1 MiB reads) | ${mbPerSecond(data.length, streamed)} |`);
