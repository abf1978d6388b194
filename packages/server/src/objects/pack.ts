/**
 * The pack format (protocol `releases.ts`): records `[32-byte id][u32 BE length][raw bytes]`, ended
 * by 32 zero bytes, the whole stream optionally compressed as one. Reading is incremental: a record
 * is held in memory only while it is verified, never the whole pack.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';
import type { PackCodec } from '@flotilla/protocol';
import { CompressStream, DecompressStream } from 'zstd-napi';

const ID_BYTES = 32;
const HEADER_BYTES = ID_BYTES + 4;
const TERMINATOR = Buffer.alloc(ID_BYTES);

export interface PackRecord {
  id: string;
  bytes: Buffer;
}

export interface ReadPackLimits {
  /** Largest record accepted, bytes. */
  maxRecordBytes: number;
  /** Most uncompressed bytes in the whole pack. */
  maxTotalBytes: number;
}

/** Buffers incoming pieces and hands out exact byte counts. */
class ByteQueue {
  private pieces: Buffer[] = [];
  private length = 0;
  private done = false;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Exactly `n` bytes, or null if the stream ended first (`partial` tells whether some were left). */
  async read(n: number): Promise<{ bytes: Buffer | null; partial: boolean }> {
    while (this.length < n && !this.done) {
      const next = await this.source.next();
      if (next.done) this.done = true;
      else if (next.value.length > 0) {
        this.pieces.push(Buffer.from(next.value.buffer, next.value.byteOffset, next.value.length));
        this.length += next.value.length;
      }
    }
    if (this.length < n) return { bytes: null, partial: this.length > 0 };
    const all = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.length);
    const bytes = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.pieces = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return { bytes, partial: false };
  }

  async atEnd(): Promise<boolean> {
    return (await this.read(1)).bytes === null;
  }
}

function packError(message: string, details?: Record<string, unknown>): FlotillaError {
  return new FlotillaError('FLT_PACK_INVALID', message, details ? { details } : {});
}

/**
 * Yields each record after checking its SHA-256 against its id. Throws FLT_PACK_INVALID for a
 * truncated pack, a record whose bytes do not match its id, or bytes after the terminator, and
 * FLT_LIMIT_EXCEEDED past the limits; the failing record is never yielded.
 */
export async function* readPack(
  source: AsyncIterable<Uint8Array>,
  limits: ReadPackLimits,
): AsyncGenerator<PackRecord> {
  const queue = new ByteQueue(source[Symbol.asyncIterator]());
  let total = 0;
  for (let index = 0; ; index++) {
    const idBytes = (await queue.read(ID_BYTES)).bytes;
    if (!idBytes) throw packError(`the pack ends before its terminator (record ${index})`);
    if (idBytes.equals(TERMINATOR)) {
      if (!(await queue.atEnd())) throw packError('bytes follow the pack terminator');
      return;
    }
    const id = idBytes.toString('hex');
    const lengthBytes = (await queue.read(4)).bytes;
    if (!lengthBytes) throw packError(`the pack ends inside the header of record ${index}`, { id });
    const length = lengthBytes.readUInt32BE(0);
    if (length > limits.maxRecordBytes)
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `record ${id} is ${length} bytes, more than ${limits.maxRecordBytes}`,
        { details: { id, length } },
      );
    total += length;
    if (total > limits.maxTotalBytes)
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `the pack carries more than ${limits.maxTotalBytes} bytes`,
      );
    const bytes = (await queue.read(length)).bytes;
    if (!bytes) throw packError(`the pack ends inside record ${id}`, { id });
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== id) throw packError(`record ${id} hashes to ${actual}`, { id, actual, index });
    yield { id, bytes };
  }
}

/** One record's header. */
export function recordHeader(id: string, length: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(id, 0, 'hex');
  header.writeUInt32BE(length, ID_BYTES);
  return header;
}

/** The pack's bytes (uncompressed) for records produced by `records`. */
export async function* writePack(records: AsyncIterable<PackRecord>): AsyncGenerator<Buffer> {
  for await (const { id, bytes } of records) {
    yield recordHeader(id, bytes.length);
    yield bytes;
  }
  yield TERMINATOR;
}

export function decompressor(codec: PackCodec): Transform {
  switch (codec) {
    case 'zstd':
      return new DecompressStream();
    case 'br':
      return zlib.createBrotliDecompress();
    case 'gzip':
      return zlib.createGunzip();
    case 'identity':
    case 'frames': // the records are compressed, each on its own
      return new PassThrough();
  }
}

export function compressor(codec: PackCodec): Transform {
  switch (codec) {
    case 'zstd':
      return new CompressStream({ compressionLevel: 3 });
    case 'br':
      return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } });
    case 'gzip':
      return zlib.createGzip();
    case 'identity':
    case 'frames':
      return new PassThrough();
  }
}

/** A compressed pack stream of `records`. */
export function packStream(records: AsyncIterable<PackRecord>, codec: PackCodec): Readable {
  const source = Readable.from(writePack(records));
  const out = compressor(codec);
  source.on('error', (error) => out.destroy(error));
  return source.pipe(out);
}

/** Parses the codec header value; FLT_BAD_REQUEST for anything else. */
export function parseCodec(value: string | string[] | undefined): PackCodec {
  const text = (Array.isArray(value) ? value[0] : value)?.trim().toLowerCase() ?? 'identity';
  if (text === 'zstd' || text === 'br' || text === 'gzip' || text === 'identity') return text;
  throw new FlotillaError('FLT_BAD_REQUEST', `unknown pack codec "${text}" (zstd, br, gzip or identity)`);
}
