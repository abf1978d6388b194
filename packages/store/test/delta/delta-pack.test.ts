import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeltaKind, deltaPairKey, deltaRecordBytes, readDeltaPack, writeDeltaPack } from '../../src/index.js';
import type { DeltaRecord, ReadDeltaPackOptions } from '../../src/index.js';
import { seededBytes, seededRandom } from '../helpers.js';

const id = (n: number): string => n.toString(16).padStart(2, '0').repeat(32);

const RECORDS: DeltaRecord[] = [
  { target: id(1), base: id(2), kind: DeltaKind.zstd, payload: seededBytes(1, 5_000) },
  { target: id(3), base: id(4), kind: DeltaKind.none, payload: Buffer.alloc(0) },
  { target: id(5), base: id(6), kind: DeltaKind.zstd, payload: seededBytes(2, 1) },
  { target: id(1), base: id(7), kind: DeltaKind.zstd, payload: seededBytes(3, 70_000) },
];

function options(records: DeltaRecord[] = RECORDS, maxPayloadBytes = 1 << 20): ReadDeltaPackOptions {
  return { expected: new Set(records.map((r) => deltaPairKey(r.target, r.base))), maxPayloadBytes };
}

async function packBytes(records: DeltaRecord[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  async function* source(): AsyncGenerator<DeltaRecord> {
    for (const record of records) {
      await Promise.resolve();
      yield record;
    }
  }
  for await (const part of writeDeltaPack(source())) parts.push(part);
  return Buffer.concat(parts);
}

/** `bytes` as a stream of pieces cut at the given sizes (the rest in one piece). */
async function* pieces(bytes: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
  let offset = 0;
  for (const size of sizes) {
    if (offset >= bytes.length) return;
    await Promise.resolve(); // as from a socket: each piece in its own turn
    yield bytes.subarray(offset, offset + size);
    offset += size;
  }
  if (offset < bytes.length) yield bytes.subarray(offset);
}

/** Reads the whole pack; returns the records read and the error that ended it, if any. */
async function read(
  stream: AsyncIterable<Uint8Array>,
  opts: ReadDeltaPackOptions = options(),
): Promise<{ records: DeltaRecord[]; error?: { code: string; message: string } }> {
  const records: DeltaRecord[] = [];
  try {
    for await (const record of readDeltaPack(stream, opts)) records.push(record);
  } catch (error) {
    return { records, error: error as { code: string; message: string } };
  }
  return { records };
}

/** A record header written by hand, for what the writer would never produce. */
function header(target: string, base: string, kind: number, length: number): Buffer {
  const out = Buffer.alloc(69);
  out.write(target, 0, 'hex');
  out.write(base, 32, 'hex');
  out[64] = kind;
  out.writeUInt32BE(length, 65);
  return out;
}

const END = Buffer.alloc(32);

void describe('delta pack', () => {
  void it('round trips in one piece, byte by byte, and in random pieces', async () => {
    const bytes = await packBytes(RECORDS);
    assert.deepEqual((await read(pieces(bytes, []))).records, RECORDS);
    assert.deepEqual((await read(pieces(bytes, new Array<number>(bytes.length).fill(1)))).records, RECORDS);
    for (let seed = 1; seed <= 20; seed++) {
      const random = seededRandom(seed);
      const sizes = Array.from({ length: 200 }, () => random(3_000));
      const { records, error } = await read(pieces(bytes, sizes));
      assert.equal(error, undefined, `seed ${seed}`);
      assert.deepEqual(records, RECORDS, `seed ${seed}`);
    }
  });

  void it('an empty pack is just the end marker', async () => {
    const bytes = await packBytes([]);
    assert.deepEqual(bytes, END);
    assert.deepEqual(await read(pieces(bytes, [5])), { records: [] });
  });

  void it('refuses a pair that was not asked for', async () => {
    const bytes = await packBytes(RECORDS);
    const { records, error } = await read(pieces(bytes, []), options(RECORDS.slice(0, 2)));
    assert.equal(records.length, 2);
    assert.equal(error?.code, 'FLT_PACK_INVALID');
    assert.match(String(error?.message), /unrequested pair/);
  });

  void it('refuses a pair sent twice', async () => {
    const bytes = await packBytes([RECORDS[0]!, RECORDS[1]!, RECORDS[0]!]);
    const { records, error } = await read(pieces(bytes, [7, 100]));
    assert.equal(records.length, 2);
    assert.equal(error?.code, 'FLT_PACK_INVALID');
    assert.match(String(error?.message), /sent twice/);
  });

  void it('refuses an unknown kind and a "none" record that carries bytes', async () => {
    for (const [kind, length, pattern] of [
      [2, 0, /unknown record kind 2/],
      [255, 4, /unknown record kind 255/],
      [DeltaKind.none, 3, /"none" record carries bytes/],
    ] as const) {
      const bytes = Buffer.concat([header(id(1), id(2), kind, length), Buffer.alloc(length), END]);
      const { records, error } = await read(pieces(bytes, []));
      assert.deepEqual(records, []);
      assert.equal(error?.code, 'FLT_PACK_INVALID');
      assert.match(String(error?.message), pattern);
    }
  });

  void it('refuses a payload over the limit from its header, before its bytes arrive', async () => {
    const bytes = header(id(1), id(2), DeltaKind.zstd, 4_000_000_000);
    const { records, error } = await read(pieces(bytes, []), options(RECORDS, 1 << 20));
    assert.deepEqual(records, []);
    assert.equal(error?.code, 'FLT_LIMIT_EXCEEDED');
    const exact = await packBytes([RECORDS[0]!]);
    assert.equal((await read(pieces(exact, []), options(RECORDS, 5_000))).error, undefined);
    assert.equal((await read(pieces(exact, []), options(RECORDS, 4_999))).error?.code, 'FLT_LIMIT_EXCEEDED');
  });

  void it('refuses bytes after the end marker, in the same piece or a later one', async () => {
    const bytes = await packBytes(RECORDS.slice(0, 2));
    for (const stream of [
      pieces(Buffer.concat([bytes, Buffer.from([0])]), []),
      pieces(Buffer.concat([bytes, Buffer.from([0])]), [bytes.length]),
      pieces(Buffer.concat([bytes, END]), [bytes.length - 3]),
    ]) {
      const { records, error } = await read(stream);
      assert.equal(records.length, 2);
      assert.equal(error?.code, 'FLT_PACK_INVALID');
      assert.match(String(error?.message), /after the end marker/);
    }
    // Empty pieces after the end are harmless.
    assert.equal((await read(pieces(Buffer.concat([bytes]), [bytes.length, 0, 0]))).error, undefined);
  });

  void it('a cut stream yields every record before the cut, then fails', async () => {
    const bytes = await packBytes(RECORDS);
    const ends: number[] = [];
    let offset = 0;
    for (const record of RECORDS) {
      offset += deltaRecordBytes(record).reduce((n, b) => n + b.length, 0);
      ends.push(offset);
    }
    for (const cut of [
      0,
      1,
      31,
      32,
      68,
      69,
      ends[0]! - 1,
      ends[0]!,
      ends[0]! + 40,
      ends[2]! + 1000,
      bytes.length - 1,
    ]) {
      const { records, error } = await read(pieces(bytes.subarray(0, cut), [17, 1000, 3]));
      assert.equal(error?.code, 'FLT_PACK_INVALID', `cut at ${cut}`);
      assert.match(String(error?.message), /ends before its end marker/);
      assert.deepEqual(records, RECORDS.slice(0, ends.filter((end) => end <= cut).length), `cut at ${cut}`);
    }
  });
});
