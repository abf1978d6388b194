/**
 * Reads a pack stream (protocol `api/releases.ts`): records `[32-byte id][u32 BE length][bytes]`,
 * ended by 32 zero bytes. Every record must be one that was asked for, once, within the size limit,
 * and must hash to its id; a record is handed on only once verified, so a cut stream keeps all the
 * records before the cut. In a pack of `frames`, a record is the object's stored frame: it is
 * handed on as it is, to a sink that verifies it while it stores it (`putFrame` decodes and
 * hashes it), so that it is decoded once.
 */
import { timeSlices } from '@flotilla/node-kit';
import { FlotillaError } from '@flotilla/protocol';
import { FRAME_HEADER_LENGTH, contentId } from '@flotilla/store';

const HEADER = 36;

export async function readPack(
  stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  expected: ReadonlySet<string>,
  maxRecordBytes: number,
  onRecord: (id: string, bytes: Uint8Array) => Promise<void>,
  options: { frames?: boolean } = {},
): Promise<void> {
  const frames = options.frames === true;
  const maxBytes = frames ? maxRecordBytes + FRAME_HEADER_LENGTH : maxRecordBytes;
  const seen = new Set<string>();
  // The pieces received and not yet read (the first one possibly begun): a record is copied out
  // only when it spans pieces, where appending each piece to what was left copied it again.
  const parts: Buffer[] = [];
  let have = 0;
  /** The first `n` bytes in one buffer (the leading pieces merged where they must be). */
  const front = (n: number): Buffer => {
    if (parts[0]!.length >= n) return parts[0]!;
    let count = 0;
    let length = 0;
    while (length < n) length += parts[count++]!.length;
    const merged = Buffer.concat(parts.slice(0, count), length);
    parts.splice(0, count, merged);
    return merged;
  };
  const drop = (n: number): void => {
    have -= n;
    while (n > 0) {
      const first = parts[0]!;
      if (first.length > n) {
        parts[0] = first.subarray(n);
        return;
      }
      parts.shift();
      n -= first.length;
    }
  };
  // A pack that arrived faster than it is stored is read in one run of microtasks otherwise,
  // holding the event loop (and the runtime's streams waiting on it) for the whole pack.
  const pause = timeSlices();
  let ended = false;
  const bad = (message: string, details: Record<string, unknown> = {}) =>
    new FlotillaError('FLT_PACK_INVALID', `pack: ${message}`, { details });
  for await (const piece of stream) {
    if (ended) {
      if (piece.length > 0) throw bad('data after the end marker');
      continue;
    }
    if (piece.length === 0) continue;
    parts.push(Buffer.from(piece.buffer, piece.byteOffset, piece.length));
    have += piece.length;
    for (;;) {
      if (have < 32) break;
      const idBytes = front(32).subarray(0, 32);
      if (idBytes.every((b) => b === 0)) {
        if (have > 32) throw bad('data after the end marker');
        ended = true;
        drop(have);
        break;
      }
      if (have < HEADER) break;
      const header = front(HEADER);
      const id = header.subarray(0, 32).toString('hex');
      const length = header.readUInt32BE(32);
      if (!expected.has(id)) throw bad(`unrequested object ${id}`, { id });
      if (seen.has(id)) throw bad(`object ${id} sent twice`, { id });
      if (length > maxBytes) {
        throw new FlotillaError(
          'FLT_LIMIT_EXCEEDED',
          `pack: object ${id} of ${length} bytes is over the limit`,
          {
            details: { id, length, limit: maxBytes },
          },
        );
      }
      if (have < HEADER + length) break;
      const bytes = front(HEADER + length).subarray(HEADER, HEADER + length);
      const actual = frames ? id : contentId(bytes);
      if (actual !== id) {
        throw new FlotillaError('FLT_HASH_MISMATCH', `pack: object ${id} hashes to ${actual}`, {
          details: { id, actual },
        });
      }
      seen.add(id);
      drop(HEADER + length);
      await onRecord(id, bytes);
      await pause();
    }
  }
  if (!ended) {
    throw new FlotillaError('FLT_NETWORK', 'pack: the stream ended before its end marker (connection cut?)', {
      details: { received: seen.size, expected: expected.size },
    });
  }
}
