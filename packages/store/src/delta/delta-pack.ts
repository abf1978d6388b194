/**
 * The delta pack's records (protocol `DELTA_PACK_CONTENT_TYPE`):
 * `[32-byte target id][32-byte base id][u8 kind][u32 BE length][length bytes]`, ended by 32 zero
 * bytes. The reader is incremental (a record is held only until it is handed on) and refuses a
 * record that was not asked for, one sent twice, one over the size limit, an unknown kind, and
 * bytes after the end; a cut stream keeps every record before the cut.
 */
import { FlotillaError } from '@flotilla/protocol';

const ID_BYTES = 32;
const HEADER_BYTES = ID_BYTES * 2 + 1 + 4;
const TERMINATOR = Buffer.alloc(ID_BYTES);

export const DeltaKind = { none: 0, zstd: 1 } as const;
export type DeltaKind = (typeof DeltaKind)[keyof typeof DeltaKind];

export interface DeltaRecord {
  target: string;
  base: string;
  kind: DeltaKind;
  /** The zstd frame for kind `zstd`; empty for `none`. */
  payload: Buffer;
}

/** The bytes of one record. */
export function deltaRecordBytes(record: DeltaRecord): Buffer[] {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(record.target, 0, 'hex');
  header.write(record.base, ID_BYTES, 'hex');
  header[ID_BYTES * 2] = record.kind;
  header.writeUInt32BE(record.payload.length, ID_BYTES * 2 + 1);
  return record.payload.length > 0 ? [header, record.payload] : [header];
}

/** The whole delta pack for `records`, terminator included. */
export async function* writeDeltaPack(records: AsyncIterable<DeltaRecord>): AsyncGenerator<Buffer> {
  for await (const record of records) yield* deltaRecordBytes(record);
  yield TERMINATOR;
}

export interface ReadDeltaPackOptions {
  /** `target:base` of every pair asked for. */
  expected: ReadonlySet<string>;
  /** Largest payload accepted, bytes. */
  maxPayloadBytes: number;
}

export function deltaPairKey(target: string, base: string): string {
  return `${target}:${base}`;
}

function invalid(message: string, details: Record<string, unknown> = {}): FlotillaError {
  return new FlotillaError('FLT_PACK_INVALID', `delta pack: ${message}`, { details });
}

/** Yields each record of a delta pack stream as soon as it is complete. */
export async function* readDeltaPack(
  stream: AsyncIterable<Uint8Array>,
  options: ReadDeltaPackOptions,
): AsyncGenerator<DeltaRecord> {
  const seen = new Set<string>();
  let pieces: Buffer[] = [];
  let length = 0;
  let ended = false;
  const take = (n: number): Buffer => {
    const all = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, length);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    pieces = rest.length > 0 ? [rest] : [];
    length = rest.length;
    return out;
  };
  const peek = (n: number): Buffer => {
    if (pieces[0]!.length < n) pieces = [Buffer.concat(pieces, length)];
    return pieces[0]!.subarray(0, n);
  };
  for await (const piece of stream) {
    if (piece.length === 0) continue;
    if (ended) throw invalid('bytes after the end marker');
    pieces.push(Buffer.from(piece.buffer, piece.byteOffset, piece.length));
    length += piece.length;
    for (;;) {
      if (length < ID_BYTES) break;
      if (peek(ID_BYTES).equals(TERMINATOR)) {
        if (length > ID_BYTES) throw invalid('bytes after the end marker');
        ended = true;
        pieces = [];
        length = 0;
        break;
      }
      if (length < HEADER_BYTES) break;
      const header = peek(HEADER_BYTES);
      const target = header.subarray(0, ID_BYTES).toString('hex');
      const base = header.subarray(ID_BYTES, ID_BYTES * 2).toString('hex');
      const kind = header[ID_BYTES * 2]!;
      const size = header.readUInt32BE(ID_BYTES * 2 + 1);
      const key = deltaPairKey(target, base);
      if (!options.expected.has(key)) throw invalid(`unrequested pair ${key}`, { target, base });
      if (seen.has(key)) throw invalid(`pair ${key} sent twice`, { target, base });
      if (kind !== DeltaKind.none && kind !== DeltaKind.zstd)
        throw invalid(`unknown record kind ${kind}`, { target, base, kind });
      if (kind === DeltaKind.none && size !== 0)
        throw invalid('a "none" record carries bytes', { target, base });
      if (size > options.maxPayloadBytes)
        throw new FlotillaError('FLT_LIMIT_EXCEEDED', `delta pack: the delta for ${key} is ${size} bytes`, {
          details: { target, base, size, limit: options.maxPayloadBytes },
        });
      if (length < HEADER_BYTES + size) break;
      take(HEADER_BYTES);
      const payload = Buffer.from(take(size));
      seen.add(key);
      yield { target, base, kind: kind, payload };
    }
  }
  if (!ended) throw invalid('the stream ends before its end marker');
}
