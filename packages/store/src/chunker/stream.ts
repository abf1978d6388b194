import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';
import { asIoError } from '../io-error.js';
import { cutPoint } from './fastcdc.js';
import { resolveChunkerParams } from './params.js';
import type { ChunkerOptions, ChunkerParams } from './params.js';

/** Where a streaming chunker reads from: a file path, or any async iterable of bytes (e.g. a Readable). */
export type ChunkSource = string | AsyncIterable<unknown>;

const FILE_READ_SIZE = 1024 * 1024;

/** Reads an open file from its current position to the end, in fresh 1 MiB buffers. */
export async function* readFileHandle(handle: FileHandle): AsyncGenerator<Uint8Array> {
  for (;;) {
    const buffer = Buffer.allocUnsafe(FILE_READ_SIZE);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) return;
    yield buffer.subarray(0, bytesRead);
  }
}

async function* readFile(path: string): AsyncGenerator<Uint8Array> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw asIoError(error, path);
  }
  try {
    yield* readFileHandle(handle);
  } catch (error) {
    throw asIoError(error, path);
  } finally {
    await handle.close();
  }
}

function asBytes(piece: unknown): Uint8Array {
  if (piece instanceof Uint8Array) return piece;
  throw new FlotillaError(
    'FLT_VALIDATION',
    'chunk source must yield bytes (Uint8Array/Buffer), not strings or objects',
    {
      details: { got: typeof piece },
    },
  );
}

/**
 * Streams content-defined chunks (as Buffers, in order) from a file or a byte stream. Boundaries are
 * identical to `chunkBuffer` over the concatenated input, however the input is split into reads: a
 * cut is only searched once `maxSize` bytes are buffered or the input has ended.
 */
export async function* chunkStream(
  source: ChunkSource,
  options: ChunkerOptions | ChunkerParams = {},
): AsyncGenerator<Buffer> {
  const params = resolveChunkerParams(options);
  const pieces = typeof source === 'string' ? readFile(source) : source;
  let pending: Buffer[] = [];
  let pendingLength = 0;
  for await (const raw of pieces) {
    const piece = asBytes(raw);
    if (piece.length === 0) continue;
    pending.push(Buffer.from(piece.buffer, piece.byteOffset, piece.length));
    pendingLength += piece.length;
    if (pendingLength < params.maxSize) continue;
    // A concatenated window is ours; a single piece is the caller's and may be reused by it, so
    // chunks cut from it are copied out.
    const owned = pending.length > 1;
    const window = owned ? Buffer.concat(pending, pendingLength) : pending[0]!;
    let offset = 0;
    while (window.length - offset >= params.maxSize) {
      const length = cutPoint(window, offset, window.length, params);
      const chunk = window.subarray(offset, offset + length);
      yield owned ? chunk : Buffer.from(chunk);
      offset += length;
    }
    const rest = window.subarray(offset);
    pending = rest.length > 0 ? [rest] : [];
    pendingLength = rest.length;
  }
  const tail = Buffer.concat(pending, pendingLength);
  let offset = 0;
  while (offset < tail.length) {
    const length = cutPoint(tail, offset, tail.length, params);
    yield Buffer.from(tail.subarray(offset, offset + length));
    offset += length;
  }
}
