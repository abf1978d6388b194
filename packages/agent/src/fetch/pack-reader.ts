/**
 * Reads a pack stream (protocol `api/releases.ts`): records `[32-byte id][u32 BE length][bytes]`,
 * ended by 32 zero bytes. Every record must be one that was asked for, once, within the size limit,
 * and must hash to its id; a record is handed on only once verified, so a cut stream keeps all the
 * records before the cut.
 */
import { FlotillaError } from '@flotilla/protocol';
import { contentId } from '@flotilla/store';

const HEADER = 36;

export async function readPack(
  stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  expected: ReadonlySet<string>,
  maxRecordBytes: number,
  onRecord: (id: string, bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  const seen = new Set<string>();
  let buffered: Buffer = Buffer.alloc(0);
  let ended = false;
  const bad = (message: string, details: Record<string, unknown> = {}) =>
    new FlotillaError('FLT_PACK_INVALID', `pack: ${message}`, { details });
  for await (const piece of stream) {
    if (ended) {
      if (piece.length > 0) throw bad('data after the end marker');
      continue;
    }
    buffered = buffered.length === 0 ? Buffer.from(piece) : Buffer.concat([buffered, piece]);
    for (;;) {
      if (buffered.length < 32) break;
      const idBytes = buffered.subarray(0, 32);
      if (idBytes.every((b) => b === 0)) {
        if (buffered.length > 32) throw bad('data after the end marker');
        ended = true;
        buffered = Buffer.alloc(0);
        break;
      }
      if (buffered.length < HEADER) break;
      const id = idBytes.toString('hex');
      const length = buffered.readUInt32BE(32);
      if (!expected.has(id)) throw bad(`unrequested object ${id}`, { id });
      if (seen.has(id)) throw bad(`object ${id} sent twice`, { id });
      if (length > maxRecordBytes) {
        throw new FlotillaError(
          'FLT_LIMIT_EXCEEDED',
          `pack: object ${id} of ${length} bytes is over the limit`,
          {
            details: { id, length, limit: maxRecordBytes },
          },
        );
      }
      if (buffered.length < HEADER + length) break;
      const bytes = buffered.subarray(HEADER, HEADER + length);
      const actual = contentId(bytes);
      if (actual !== id) {
        throw new FlotillaError('FLT_HASH_MISMATCH', `pack: object ${id} hashes to ${actual}`, {
          details: { id, actual },
        });
      }
      seen.add(id);
      await onRecord(id, bytes);
      buffered = buffered.subarray(HEADER + length);
    }
  }
  if (!ended) {
    throw new FlotillaError('FLT_NETWORK', 'pack: the stream ended before its end marker (connection cut?)', {
      details: { received: seen.size, expected: expected.size },
    });
  }
}
