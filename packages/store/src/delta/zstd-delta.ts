/**
 * File deltas as `zstd --patch-from` makes them: the new content compressed with the old content
 * loaded as a raw-content dictionary, with a window large enough to reach all of it. The encoder
 * and the decoder make the same choices from the base alone, so a delta decodes only against the
 * exact base it was made from; the decoder writes into a buffer of exactly the expected size and
 * refuses anything else, so a hostile delta cannot allocate beyond what the signed file object says.
 */
import { FlotillaError } from '@flotilla/protocol/errors';
import zstd from 'zstd-napi/binding.js';

/** Default zstd level for deltas: 12 compresses 2.5x faster than 19 for 1.5x the bytes (docs/releases.md "Deltas"). */
export const DEFAULT_DELTA_LEVEL = 12;
/** Largest file (base or target) a delta is made for by default: 128 MiB. */
export const DEFAULT_MAX_DELTA_FILE_BYTES = 128 * 1024 * 1024;
/** zstd's own largest window on 64-bit builds is 2^31; deltas stay within 2^30 (base + target). */
const MAX_WINDOW_LOG = 30;
const MIN_WINDOW_LOG = 10;
/** Little-endian ZSTD_MAGIC_DICTIONARY: a base starting with it would be parsed as a trained dictionary. */
const DICTIONARY_MAGIC = 0xec30a437;
/** Below this, a base adds nothing worth a dictionary (zstd needs at least 8 bytes of content). */
const MIN_BASE_BYTES = 8;

/**
 * One decompression context for every delta (calls are synchronous), so its workspace is reused.
 * The base is referenced where it lies (`ZSTD_decompress_usingDict` with raw content: no copy), where
 * loading it into the context copied it into fresh memory, expensive on virtual machines (a 46 MB
 * binary's base cost a copy of 46 MB of newly touched pages).
 */
let decodeContext: zstd.DCtx | null = null;

export interface DeltaEncodeOptions {
  level?: number;
}

/** Whether `base` can serve as a delta base (a trained zstd dictionary cannot: it is not raw content). */
export function usableAsDeltaBase(base: Uint8Array): boolean {
  if (base.length < 4) return true;
  return Buffer.from(base.buffer, base.byteOffset, 4).readUInt32LE(0) !== DICTIONARY_MAGIC;
}

function windowLog(baseLength: number, targetLength: number): number {
  const needed = Math.ceil(Math.log2(baseLength + targetLength + 1));
  return Math.min(MAX_WINDOW_LOG, Math.max(MIN_WINDOW_LOG, needed));
}

function withDictionary(base: Uint8Array): boolean {
  return base.length >= MIN_BASE_BYTES;
}

/** A zstd frame of `target` made against `base`. */
export function encodeDelta(base: Uint8Array, target: Uint8Array, options: DeltaEncodeOptions = {}): Buffer {
  if (!usableAsDeltaBase(base))
    throw new FlotillaError(
      'FLT_VALIDATION',
      'a base that starts with the zstd dictionary magic cannot be used',
    );
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.compressionLevel, options.level ?? DEFAULT_DELTA_LEVEL);
  cctx.setParameter(zstd.CParameter.windowLog, windowLog(base.length, target.length));
  if (base.length + target.length > 1 << 20) cctx.setParameter(zstd.CParameter.enableLongDistanceMatching, 1);
  if (withDictionary(base)) cctx.loadDictionary(base);
  const out = Buffer.allocUnsafe(zstd.compressBound(target.length) + 64);
  const written = cctx.compress2(out, target);
  return Buffer.from(out.subarray(0, written));
}

/**
 * The content `delta` rebuilds from `base`: exactly `expectedLength` bytes or FLT_DELTA_INVALID.
 * The caller still verifies the content (chunk by chunk) against the signed file object.
 * `into`, at least `expectedLength` long, receives the content (the result is a view of it): a
 * caller rebuilding many files reuses one buffer instead of touching fresh memory for each.
 */
export function decodeDelta(
  base: Uint8Array,
  delta: Uint8Array,
  expectedLength: number,
  into?: Buffer,
): Buffer {
  if (!usableAsDeltaBase(base))
    throw new FlotillaError('FLT_DELTA_INVALID', 'the base starts with the zstd dictionary magic');
  if (into !== undefined && into.length < expectedLength)
    throw new FlotillaError('FLT_VALIDATION', `the output buffer is smaller than ${expectedLength} bytes`);
  // Exactly the expected length: a delta that rebuilds more fails to decode (no room).
  const out = (into ?? Buffer.allocUnsafe(expectedLength)).subarray(0, expectedLength);
  let written: number;
  try {
    const dctx = (decodeContext ??= new zstd.DCtx());
    written = withDictionary(base) ? dctx.decompressUsingDict(out, delta, base) : dctx.decompress(out, delta);
  } catch (cause) {
    decodeContext = null;
    throw new FlotillaError('FLT_DELTA_INVALID', 'the delta does not decode against its base', { cause });
  }
  if (written !== expectedLength)
    throw new FlotillaError(
      'FLT_DELTA_INVALID',
      `the delta rebuilds ${written} bytes, the file object says ${expectedLength}`,
      { details: { written, expectedLength } },
    );
  return out;
}
