import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';
import * as tar from 'tar-stream';
import { DecompressStream } from 'zstd-napi';
import type { LayerCompression } from '../registry/types.js';

/** One entry of a layer's tar: its header and, for regular files, its content. */
export type EntryHandler = (header: tar.Header, body: AsyncIterable<Buffer>) => Promise<void>;

async function sniff(path: string): Promise<LayerCompression> {
  const head = await new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    const s = createReadStream(path, { start: 0, end: 3 });
    s.on('data', (c) => parts.push(c as Buffer));
    s.on('end', () => resolve(Buffer.concat(parts)));
    s.on('error', reject);
  });
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
  const extract = tar.extract();
  const source = createReadStream(path);
  const stages: NodeJS.ReadWriteStream[] = [];
  if (compression === 'gzip') stages.push(createGunzip());
  if (compression === 'zstd') stages.push(new DecompressStream());
  let input: NodeJS.ReadableStream = source;
  source.on('error', (error: Error) => extract.destroy(error));
  for (const stage of stages) stage.on('error', (error: Error) => extract.destroy(error));
  for (const stage of stages) input = input.pipe(stage);
  input.pipe(extract);
  const onAbort = (): void => {
    extract.destroy(new FlotillaError('FLT_UNAVAILABLE', 'the conversion was cancelled'));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const entry of extract) {
      await onEntry(entry.header, entry as AsyncIterable<Buffer>);
      entry.resume();
    }
  } catch (error) {
    if (error instanceof FlotillaError) throw error;
    throw new FlotillaError(
      'FLT_LAYER_INVALID',
      `layer ${digest} is not a readable ${compression === 'none' ? '' : `${compression} `}tar: ${(error as Error).message}`,
      { cause: error, details: { digest } },
    );
  } finally {
    signal?.removeEventListener('abort', onAbort);
    source.destroy();
  }
}
