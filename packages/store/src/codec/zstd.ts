import zstd from 'zstd-napi/binding.js';

/**
 * zstd through zstd-napi's one-shot binding (ZSTD_compress / ZSTD_decompress). The one-shot
 * decompress writes into a buffer of exactly the declared size and fails if the frame holds more,
 * so a hostile frame cannot allocate beyond the size the caller already bounded.
 */
export function zstdCompress(data: Uint8Array, level: number): Buffer {
  const out = Buffer.allocUnsafe(zstd.compressBound(data.length));
  const written = zstd.compress(out, data, level);
  return out.subarray(0, written);
}

export function zstdDecompress(frame: Uint8Array, expectedLength: number): Buffer {
  const out = Buffer.allocUnsafe(expectedLength);
  const written = zstd.decompress(out, frame);
  return out.subarray(0, written);
}
