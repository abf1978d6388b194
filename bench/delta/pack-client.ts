/**
 * Downloads objects through the server's pack endpoint as the agent's fetcher does (batches of 1,000
 * ids, 4 requests at a time, whole-stream zstd), counting the response body bytes on the wire.
 * Records are decompressed with the `zstd` tool (the bench has no zstd binding of its own).
 */
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { ObjectRoutes, PACK_CONTENT_TYPE } from '@flotilla/protocol';
import { packRecords } from './pack-records.js';

export const BATCH_SIZE = 1000;
export const PARALLEL_REQUESTS = 4;

export type RecordSink = (id: string, bytes: Buffer) => Promise<void>;

async function fetchBatch(
  base: string,
  token: string,
  ids: string[],
  sink: RecordSink | null,
): Promise<number> {
  const response = await fetch(`${base}${ObjectRoutes.pack}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: PACK_CONTENT_TYPE,
    },
    body: JSON.stringify({ ids, codec: 'zstd' }),
  });
  if (!response.ok || response.body === null)
    throw new Error(`pack: ${response.status} ${await response.text()}`);
  const zstd = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => zstd.on('close', resolve));
  // A write after zstd died (EPIPE) shows up as its exit status or a short pack, not as a crash.
  zstd.stdin.on('error', () => undefined);
  const writable = () =>
    new Promise((resolve) => {
      zstd.stdin.once('drain', resolve);
      zstd.stdin.once('close', resolve);
    });
  let wire = 0;
  const feed = (async () => {
    for await (const piece of Readable.fromWeb(response.body as ReadableStream)) {
      const bytes = piece as Buffer;
      wire += bytes.length;
      if (zstd.stdin.destroyed) break;
      if (!zstd.stdin.write(bytes)) await writable();
    }
    zstd.stdin.end();
  })().then(
    () => null,
    (error: unknown) => {
      zstd.kill(); // ends zstd's output, so that reading the records stops too
      return error;
    },
  );
  let received = 0;
  let failure: unknown = null;
  try {
    for await (const record of packRecords(zstd.stdout as AsyncIterable<Buffer>)) {
      received++;
      if (sink) await sink(record.id, record.bytes);
    }
  } catch (error) {
    failure = error;
    zstd.kill();
  }
  failure = (await feed) ?? failure;
  if (failure !== null)
    throw failure instanceof Error ? failure : new Error('the pack download failed', { cause: failure });
  if ((await exited) !== 0) throw new Error('zstd could not decompress the pack');
  if (received !== ids.length) throw new Error(`pack carried ${received} records, asked ${ids.length}`);
  return wire;
}

/** Fetches `ids` and returns the response body bytes; each record goes to `sink` when given. */
export async function fetchPacks(
  base: string,
  token: string,
  ids: readonly string[],
  sink: RecordSink | null,
): Promise<number> {
  const batches: string[][] = [];
  for (let i = 0; i < ids.length; i += BATCH_SIZE) batches.push(ids.slice(i, i + BATCH_SIZE));
  let wire = 0;
  const worker = async () => {
    for (let batch = batches.shift(); batch; batch = batches.shift()) {
      // Not `wire += await …`: that reads `wire` before the await and loses the other workers' bytes.
      const bytes = await fetchBatch(base, token, batch, sink);
      wire += bytes;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_REQUESTS }, worker));
  return wire;
}
