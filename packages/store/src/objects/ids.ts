import { createHash } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol/errors';

const HEX_ID = /^[0-9a-f]{64}$/;

/** The id of a chunk or object: SHA-256 of its (uncompressed, canonical) bytes, lowercase hex. */
export function contentId(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function isContentId(value: unknown): value is string {
  return typeof value === 'string' && HEX_ID.test(value);
}

/** Throws FLT_VALIDATION unless `id` is 64 lowercase hex digits (also keeps ids safe as file names). */
export function assertContentId(id: unknown, what = 'id'): asserts id is string {
  if (!isContentId(id)) {
    throw new FlotillaError('FLT_VALIDATION', `${what} must be 64 lowercase hex digits (SHA-256)`, {
      details: { [what]: id },
    });
  }
}

/** Throws FLT_HASH_MISMATCH unless `bytes` hash to `id`. */
export function verifyContentId(id: string, bytes: Uint8Array): void {
  const actual = contentId(bytes);
  if (actual !== id) {
    throw new FlotillaError('FLT_HASH_MISMATCH', `content hashes to ${actual}, expected ${id}`, {
      details: { expected: id, actual },
    });
  }
}
