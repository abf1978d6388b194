/** Receives a pack upload: counts wire bytes, decompresses, verifies and stores each record. */
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import { FlotillaError } from '@flotilla/protocol';
import type { PackCodec, UploadResponse } from '@flotilla/protocol';
import { DEFAULT_MAX_DECODED_BYTES } from '@flotilla/store';
import type { ObjectMetrics } from './metrics.js';
import { decompressor, readPack } from './pack.js';
import type { ObjectStore } from './store.js';

export interface UploadOptions {
  store: ObjectStore;
  metrics: ObjectMetrics;
  /** Most bytes on the wire and most uncompressed bytes. */
  maxBytes: number;
}

/** Stores every valid record before the first bad one; throws for the bad one (nothing of it stored). */
export async function receivePack(
  body: Readable,
  codec: PackCodec,
  opts: UploadOptions,
): Promise<UploadResponse> {
  const result: UploadResponse = { received: 0, duplicates: 0, bytes: 0, wireBytes: 0 };
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      result.wireBytes += chunk.length;
      if (result.wireBytes > opts.maxBytes)
        done(new FlotillaError('FLT_LIMIT_EXCEEDED', `the upload is larger than ${opts.maxBytes} bytes`));
      else done(null, chunk);
    },
  });
  const decoded = decompressor(codec);
  body.on('error', (e) => counter.destroy(e));
  counter.on('error', (e) => decoded.destroy(e));
  body.pipe(counter).pipe(decoded);
  try {
    const records = readPack(decoded, {
      maxRecordBytes: DEFAULT_MAX_DECODED_BYTES,
      maxTotalBytes: opts.maxBytes,
    });
    for await (const { id, bytes } of records) {
      result.bytes += bytes.length;
      if (await opts.store.put(id, bytes)) {
        result.received += 1;
        opts.metrics.objectsReceived.inc();
      } else result.duplicates += 1;
    }
  } catch (error) {
    discardRest(body);
    throw asPackError(error);
  } finally {
    opts.metrics.bytesReceived.inc({ encoding: 'wire' }, result.wireBytes);
    opts.metrics.bytesReceived.inc({ encoding: 'raw' }, result.bytes);
    decoded.destroy();
    counter.destroy();
  }
  return result;
}

/** Decompressor failures (corrupt zstd, gzip, brotli) surface as a bad pack, not a server error. */
function asPackError(error: unknown): unknown {
  if (error instanceof FlotillaError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new FlotillaError('FLT_PACK_INVALID', `the pack cannot be decoded: ${message}`, { cause: error });
}

/** Most bytes of a refused upload read and dropped so the client sees the error cleanly. */
const MAX_DISCARD_BYTES = 16 * 1024 * 1024;

/**
 * After a refusal the client may still be sending. Reading (and dropping) the rest lets it finish
 * and read the error, and lets the server close the connection; a sender that goes on past the
 * cap is cut off.
 */
function discardRest(body: Readable): void {
  body.unpipe();
  let discarded = 0;
  body.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > MAX_DISCARD_BYTES) body.destroy();
  });
  body.on('error', () => undefined);
  body.resume();
}
