import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { DEFAULT_CHUNKER_OPTIONS, chunkBuffer, chunkStream, chunkerParams, contentId } from '../src/index.js';
import type { ChunkerOptions } from '../src/index.js';
import { seededBytes, seededRandom, withTempDir } from './helpers.js';

function digestOfIds(data: Buffer, lengths: number[]): string {
  let offset = 0;
  const ids = lengths.map((length) => {
    const id = contentId(data.subarray(offset, offset + length));
    offset += length;
    return id;
  });
  return createHash('sha256').update(ids.join('\n')).digest('hex');
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk);
  return chunks;
}

/** Yields `data` in pieces of random sizes (0 to `maxPiece` bytes), copying each piece. */
function* randomSplits(data: Buffer, seed: number, maxPiece: number): Generator<Buffer> {
  const random = seededRandom(seed);
  let offset = 0;
  while (offset < data.length) {
    const size = random(maxPiece + 1);
    yield Buffer.from(data.subarray(offset, offset + size));
    offset += size;
  }
}

// Fixed vectors: any change to the gear table, the masks or the cut logic changes these and, with
// them, every chunk id and release id. Change them only together with a format version.
const VECTORS = [
  {
    seed: 1,
    length: 4 * 1024 * 1024,
    options: {},
    inputSha256: 'd02c4785ad5dddacf5e221dd6055e7fc7381967b8e0d21215603f076f492e980',
    lengths: [
      44280, 116074, 103307, 70452, 104731, 74386, 90249, 72792, 74405, 20511, 86831, 73759, 55152, 95547,
      98237, 80381, 67003, 70537, 84240, 70432, 78746, 67855, 100409, 79189, 75337, 103377, 87297, 82389,
      78284, 77928, 77620, 112629, 76349, 109796, 137312, 17359, 88102, 75857, 36541, 129228, 54520, 69658,
      95835, 68354, 40801, 94874, 116263, 75230, 87526, 68493, 71801, 103217, 2822,
    ],
    firstChunk: 'bceccbb24f6652a0466c81d2b06681a29f7d33c4844e534a930a4fc456361702',
    idsDigest: 'd63ab3ee072f8b5160e20738d9de1ec92fbedfb8dc7d8d634bf8200695e24f0b',
  },
  {
    seed: 7,
    length: 96 * 1024,
    options: { minSize: 256, avgSize: 1024, maxSize: 4096 },
    inputSha256: 'c437a1bedef74b0e033b58519ae342fc0e42df4e46fea6691fe076816bb47713',
    lengths: [
      1076, 1280, 856, 2070, 1365, 281, 480, 1455, 1593, 400, 1605, 777, 1061, 1064, 1852, 1498, 1202, 543,
      1151, 1166, 1399, 1172, 1240, 1081, 821, 1081, 1126, 1315, 1734, 1113, 1247, 1560, 1201, 441, 1090,
      1584, 1072, 1057, 1098, 820, 2247, 1304, 1139, 1198, 1081, 279, 404, 1400, 1072, 1663, 1055, 1055, 1120,
      1325, 932, 1178, 1229, 1086, 1428, 1131, 1077, 1477, 1079, 413, 1561, 554, 1081, 1175, 1580, 1508, 1070,
      1543, 1918, 1489, 1868, 1136, 1123, 1188, 1867, 1120, 883, 1249, 992,
    ],
    firstChunk: 'fd9da04736bb85aca01c1e55ebc2057b7c36e0f9b2188c5b0fe15d9452148ff0',
    idsDigest: 'd146114d42ffff801f514134deb6d577b4951c6a594419f4a4f506fab287eee5',
  },
] as const;

void describe('FastCDC fixed vectors', () => {
  for (const vector of VECTORS) {
    void it(`seed ${vector.seed}, ${vector.length} bytes, ${JSON.stringify(vector.options)}`, () => {
      const data = seededBytes(vector.seed, vector.length);
      assert.equal(contentId(data), vector.inputSha256, 'the generated input itself changed');
      const spans = chunkBuffer(data, vector.options);
      assert.deepEqual(
        spans.map((s) => s.length),
        vector.lengths,
      );
      assert.equal(contentId(data.subarray(0, spans[0]!.length)), vector.firstChunk);
      assert.equal(digestOfIds(data, [...vector.lengths]), vector.idsDigest);
    });
  }
});

void describe('chunkBuffer', () => {
  void it('covers the input exactly, in order, and respects min and max sizes', () => {
    for (const options of [{}, { minSize: 512, avgSize: 2048, maxSize: 8192 }] as ChunkerOptions[]) {
      const params = chunkerParams(options);
      const data = seededBytes(3, 3 * 1024 * 1024 + 123);
      const spans = chunkBuffer(data, params);
      let offset = 0;
      for (const [index, span] of spans.entries()) {
        assert.equal(span.offset, offset);
        assert.ok(span.length <= params.maxSize, `chunk ${index} exceeds maxSize`);
        if (index < spans.length - 1)
          assert.ok(span.length >= params.minSize, `chunk ${index} is below minSize`);
        offset += span.length;
      }
      assert.equal(offset, data.length);
    }
  });

  void it('cuts data without any boundary (all zeros) at exactly maxSize', () => {
    const spans = chunkBuffer(Buffer.alloc(DEFAULT_CHUNKER_OPTIONS.maxSize * 3 + 10));
    assert.deepEqual(
      spans.map((s) => s.length),
      [DEFAULT_CHUNKER_OPTIONS.maxSize, DEFAULT_CHUNKER_OPTIONS.maxSize, DEFAULT_CHUNKER_OPTIONS.maxSize, 10],
    );
  });

  void it('gives no chunks for empty input and one chunk for input up to minSize', () => {
    assert.deepEqual(chunkBuffer(Buffer.alloc(0)), []);
    assert.deepEqual(chunkBuffer(seededBytes(4, DEFAULT_CHUNKER_OPTIONS.minSize)), [
      { offset: 0, length: DEFAULT_CHUNKER_OPTIONS.minSize },
    ]);
  });

  void it('averages near the configured size on random data', () => {
    const data = seededBytes(5, 16 * 1024 * 1024);
    const spans = chunkBuffer(data);
    const average = data.length / spans.length;
    assert.ok(average > 48 * 1024 && average < 96 * 1024, `average chunk ${average}`);
  });

  void it('shares most chunks after inserting 100 bytes at the start of a 4 MiB file', () => {
    const original = seededBytes(6, 4 * 1024 * 1024);
    const edited = Buffer.concat([seededBytes(99, 100), original]);
    const ids = (data: Buffer) =>
      new Set(chunkBuffer(data).map((s) => contentId(data.subarray(s.offset, s.offset + s.length))));
    const before = ids(original);
    const after = ids(edited);
    const shared = [...after].filter((id) => before.has(id)).length;
    assert.ok(after.size - shared <= 2, `${after.size - shared} of ${after.size} chunks changed`);
  });

  void it('refuses invalid sizes with FLT_VALIDATION', () => {
    const bad: ChunkerOptions[] = [
      { avgSize: 65535 },
      { minSize: 0 },
      { minSize: 65536 },
      { maxSize: 65536 },
      { avgSize: 128, minSize: 16, maxSize: 512 },
      { maxSize: 64 * 1024 * 1024 },
      { minSize: 1.5 },
      { avgSize: Number.NaN },
    ];
    for (const options of bad) {
      assert.throws(
        () => chunkerParams(options),
        (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_VALIDATION',
        JSON.stringify(options),
      );
    }
  });

  void it('re-validates a hand-made params object instead of trusting it', () => {
    const forged = { minSize: 0, avgSize: 3, maxSize: 1, maskS: 0, maskL: 0 };
    assert.throws(() => chunkBuffer(Buffer.alloc(10), forged), { code: 'FLT_VALIDATION' });
  });
});

void describe('chunkStream', () => {
  void it('finds the same boundaries as chunkBuffer whatever the read sizes', async () => {
    const options = { minSize: 1024, avgSize: 4096, maxSize: 16384 };
    const data = seededBytes(8, 1024 * 1024 + 17);
    const small = data.subarray(0, 100_000);
    for (const [seed, maxPiece, input] of [
      [1, 1, small],
      [2, 100, data],
      [3, 5000, data],
      [4, 20000, data],
      [5, 300000, data],
    ] as const) {
      const want = chunkBuffer(input, options).map((s) =>
        contentId(input.subarray(s.offset, s.offset + s.length)),
      );
      const chunks = await collect(chunkStream(Readable.from(randomSplits(input, seed, maxPiece)), options));
      assert.deepEqual(chunks.map(contentId), want, `reads of up to ${maxPiece} bytes`);
    }
  });

  void it('reads a file by path with default sizes, same as the buffer', async () => {
    await withTempDir(async (dir) => {
      const data = seededBytes(9, 2 * 1024 * 1024 + 5);
      const path = join(dir, 'f');
      await writeFile(path, data);
      const chunks = await collect(chunkStream(path));
      assert.deepEqual(
        chunks.map((c) => c.length),
        chunkBuffer(data).map((s) => s.length),
      );
      assert.ok(Buffer.concat(chunks).equals(data));
    });
  });

  void it('yields nothing for an empty stream and refuses string pieces', async () => {
    assert.deepEqual(await collect(chunkStream(Readable.from([]))), []);
    await assert.rejects(collect(chunkStream(Readable.from(['text']))), { code: 'FLT_VALIDATION' });
  });

  void it('does not alias the caller buffers it was given', async () => {
    const piece = seededBytes(10, 300 * 1024);
    const original = Buffer.from(piece);
    const chunks = await collect(chunkStream(Readable.from([piece], { objectMode: true })));
    piece.fill(0);
    assert.ok(Buffer.concat(chunks).equals(original));
  });
});
