import {
  brotliCompressSync,
  brotliDecompressSync,
  constants as zlibConstants,
  gunzipSync,
  gzipSync,
} from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';
import { zstdCompress, zstdDecompress } from './zstd.js';

/**
 * A stored or transferred chunk/object is a frame: an 8-byte header, then the payload.
 *
 *   bytes 0-1  magic 0xF1 0x0C
 *   byte  2    frame format version (1)
 *   byte  3    codec: 0 none, 1 zstd, 2 brotli, 3 gzip
 *   bytes 4-7  decoded length, uint32 big-endian
 *
 * The decoded length lets a reader refuse an oversized frame before decompressing and bound the
 * output of the decompressor (no decompression bombs).
 */
export const FRAME_HEADER_LENGTH = 8;
const MAGIC_0 = 0xf1;
const MAGIC_1 = 0x0c;
const FRAME_VERSION = 1;

export const Codecs = { none: 0, zstd: 1, brotli: 2, gzip: 3 } as const;
export type CodecName = keyof typeof Codecs;

/** Default codec and level: zstd level 3 (see docs/store.md for the measurements). */
export const DEFAULT_CODEC: CodecName = 'zstd';
export const DEFAULT_ZSTD_LEVEL = 3;
/** Largest decoded payload a frame may declare by default: 64 MiB (objects and chunks are far smaller). */
export const DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024;

export interface EncodeOptions {
  codec?: CodecName;
  /** zstd level 1-19 or brotli quality 0-11 or gzip level 1-9; defaults per codec. */
  level?: number;
}

function compressWith(codec: CodecName, data: Uint8Array, level: number | undefined): Uint8Array {
  switch (codec) {
    case 'none':
      return data;
    case 'zstd':
      return zstdCompress(data, level ?? DEFAULT_ZSTD_LEVEL);
    case 'brotli':
      return brotliCompressSync(data, {
        params: {
          [zlibConstants.BROTLI_PARAM_QUALITY]: level ?? 5,
          [zlibConstants.BROTLI_PARAM_SIZE_HINT]: data.length,
        },
      });
    case 'gzip':
      return gzipSync(data, { level: level ?? 6 });
  }
}

/**
 * Encodes bytes into a frame with the given codec; when compression does not make the payload
 * smaller (incompressible data) the frame stores it uncompressed.
 */
export function encodeFrame(data: Uint8Array, options: EncodeOptions = {}): Buffer {
  if (data.length > 0xffffffff) throw new FlotillaError('FLT_LIMIT_EXCEEDED', 'a frame holds at most 4 GiB');
  const requested = options.codec ?? DEFAULT_CODEC;
  if (!Object.prototype.hasOwnProperty.call(Codecs, requested)) {
    throw new FlotillaError('FLT_VALIDATION', `unknown codec "${String(requested)}"`);
  }
  let codec: CodecName = requested;
  let payload = compressWith(codec, data, options.level);
  if (codec !== 'none' && payload.length >= data.length) {
    codec = 'none';
    payload = data;
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + payload.length);
  frame[0] = MAGIC_0;
  frame[1] = MAGIC_1;
  frame[2] = FRAME_VERSION;
  frame[3] = Codecs[codec];
  frame.writeUInt32BE(data.length, 4);
  frame.set(payload, FRAME_HEADER_LENGTH);
  return frame;
}

export interface FrameHeader {
  codec: CodecName;
  decodedLength: number;
}

function invalid(message: string, cause?: unknown): FlotillaError {
  return new FlotillaError('FLT_CHUNK_ENCODING_INVALID', message, cause === undefined ? {} : { cause });
}

/** Reads and checks a frame header; throws FLT_CHUNK_ENCODING_INVALID or FLT_LIMIT_EXCEEDED. */
export function readFrameHeader(frame: Uint8Array, maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES): FrameHeader {
  if (frame.length < FRAME_HEADER_LENGTH) throw invalid(`frame too short (${frame.length} bytes)`);
  if (frame[0] !== MAGIC_0 || frame[1] !== MAGIC_1) throw invalid('not a Flotilla frame (bad magic)');
  if (frame[2] !== FRAME_VERSION) throw invalid(`unsupported frame version ${frame[2]}`);
  const codec = (Object.keys(Codecs) as CodecName[]).find((name) => Codecs[name] === frame[3]);
  if (codec === undefined) throw invalid(`unknown codec id ${frame[3]}`);
  const decodedLength = Buffer.from(frame.buffer, frame.byteOffset, frame.length).readUInt32BE(4);
  if (decodedLength > maxDecodedBytes) {
    throw new FlotillaError(
      'FLT_LIMIT_EXCEEDED',
      `frame declares ${decodedLength} bytes, more than the limit of ${maxDecodedBytes}`,
      {
        details: { decodedLength, maxDecodedBytes },
      },
    );
  }
  return { codec, decodedLength };
}

/** Decodes a frame to its original bytes, never producing more than the declared length. */
export function decodeFrame(frame: Uint8Array, maxDecodedBytes = DEFAULT_MAX_DECODED_BYTES): Buffer {
  const { codec, decodedLength } = readFrameHeader(frame, maxDecodedBytes);
  const payload = Buffer.from(
    frame.buffer,
    frame.byteOffset + FRAME_HEADER_LENGTH,
    frame.length - FRAME_HEADER_LENGTH,
  );
  let decoded: Buffer;
  try {
    switch (codec) {
      case 'none':
        decoded = Buffer.from(payload);
        break;
      case 'zstd':
        decoded = zstdDecompress(payload, decodedLength);
        break;
      case 'brotli':
        decoded = brotliDecompressSync(payload, { maxOutputLength: Math.max(decodedLength, 1) });
        break;
      case 'gzip':
        decoded = gunzipSync(payload, { maxOutputLength: Math.max(decodedLength, 1) });
        break;
    }
  } catch (cause) {
    throw invalid(`corrupt ${codec} payload`, cause);
  }
  if (decoded.length !== decodedLength) {
    throw invalid(`frame decodes to ${decoded.length} bytes but declares ${decodedLength}`);
  }
  return decoded;
}
