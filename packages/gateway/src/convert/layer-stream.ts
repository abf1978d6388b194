import { createReadStream } from 'node:fs';
import type { Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';
import { DecompressStream } from 'zstd-napi';
import type { LayerCompression } from '../registry/types.js';
import { readTar } from './tar.js';
import type { TarEntry } from './tar.js';

const CHUNK = 256 * 1024;

/** One entry of a layer's tar: its header and, for regular files, its content. */
export type EntryHandler = (entry: TarEntry, body: AsyncIterable<Buffer>) => Promise<void>;

async function sniff(path: string): Promise<LayerCompression> {
  const parts: Buffer[] = [];
  for await (const chunk of createReadStream(path, { start: 0, end: 3 })) parts.push(chunk as Buffer);
  const head = Buffer.concat(parts);
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length === 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/**
 * Reads a layer blob (tar, gzip or zstd, told apart by their magic bytes) and calls `onEntry` for
 * each entry in order; a damaged stream is FLT_LAYER_INVALID.
 */
export async function readLayer(
  path: string,
  digest: string,
  onEntry: EntryHandler,
  signal?: AbortSignal,
): Promise<void> {
  const compression = await sniff(path);
  // Large chunks: each one is a write of the applied file and a turn of the tar reader (zlib's
  // default of 16 KiB made the event loop's share of a layer's work about twice as large).
  const source = createReadStream(path, { highWaterMark: CHUNK });
  let input: Readable = source;
  let decoder: Transform | null = null;
  if (compression === 'gzip') decoder = createGunzip({ chunkSize: CHUNK });
  if (compression === 'zstd') decoder = new DecompressStream();
  if (decoder) {
    const d = decoder;
    source.on('error', (error) => d.destroy(error));
    input = source.pipe(d);
  }
  try {
    for await (const { entry, body } of readTar(input)) {
      if (signal?.aborted) throw new FlotillaError('FLT_UNAVAILABLE', 'the conversion was cancelled');
      await onEntry(entry, body);
    }
  } catch (error) {
    if (error instanceof FlotillaError && error.code !== 'FLT_LAYER_INVALID') throw error;
    const what = compression === 'none' ? 'tar' : `${compression} tar`;
    throw new FlotillaError(
      'FLT_LAYER_INVALID',
      `layer ${digest} is not a readable ${what}: ${(error as Error).message}`,
      {
        cause: error,
        details: { digest },
      },
    );
  } finally {
    source.destroy();
    decoder?.destroy();
  }
}
