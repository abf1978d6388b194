import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import {
  contentId,
  decodeDelta,
  encodeDelta,
  splitIntoChunks,
  usableAsDeltaBase,
  verifyFileContent,
} from '../../src/index.js';
import { seededBytes } from '../helpers.js';

const DICTIONARY_MAGIC = Buffer.from([0x37, 0xa4, 0x30, 0xec]);

/** `base` with a few edits: a replaced run, an insertion and a deletion. */
function edited(base: Buffer): Buffer {
  const out = Buffer.concat([
    base.subarray(0, 10_000),
    Buffer.from('a new line in the middle\n'),
    base.subarray(10_000, 60_000),
    seededBytes(99, 3_000),
    base.subarray(70_000),
  ]);
  out[500]! ^= 0xff;
  return out;
}

function code(expected: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.equal((error as { code?: string }).code, expected);
    return true;
  };
}

void describe('file deltas (zstd --patch-from)', () => {
  void it('round trips, and a delta of an edited file is far smaller than the file', () => {
    const base = seededBytes(1, 200_000);
    const target = edited(base);
    const delta = encodeDelta(base, target);
    assert.ok(delta.length < 5_000, `delta of ${delta.length} bytes`);
    assert.ok(decodeDelta(base, delta, target.length).equals(target));
  });

  void it('round trips with an empty or tiny base (no dictionary) and an empty target', () => {
    for (const base of [Buffer.alloc(0), Buffer.from('abc'), Buffer.from('1234567')]) {
      const target = Buffer.from('some target content, some target content');
      assert.ok(decodeDelta(base, encodeDelta(base, target), target.length).equals(target));
      assert.equal(decodeDelta(base, encodeDelta(base, Buffer.alloc(0)), 0).length, 0);
    }
  });

  void it('round trips a base over 1 MiB (long-distance matching) at another level', () => {
    const base = seededBytes(3, 1_500_000);
    const target = edited(base);
    const delta = encodeDelta(base, target, { level: 3 });
    assert.ok(decodeDelta(base, delta, target.length).equals(target));
  });

  void it('against another base: FLT_DELTA_INVALID, or bytes that fail verification', () => {
    const base = seededBytes(1, 200_000);
    const target = edited(base);
    const delta = encodeDelta(base, target);
    // A shorter base: the delta's matches point outside it.
    assert.throws(() => decodeDelta(seededBytes(2, 1_000), delta, target.length), code('FLT_DELTA_INVALID'));
    assert.throws(() => decodeDelta(Buffer.alloc(0), delta, target.length), code('FLT_DELTA_INVALID'));
    // A base of the same length: zstd cannot tell (a raw-content dictionary has no id and the
    // frame no checksum), so the rebuilt bytes are wrong and the signed chunk hashes catch it.
    const file = { size: target.length, chunks: [{ id: contentId(target), size: target.length }] };
    let rebuilt: Buffer | undefined;
    try {
      rebuilt = decodeDelta(seededBytes(2, base.length), delta, target.length);
    } catch (error) {
      code('FLT_DELTA_INVALID')(error);
    }
    if (rebuilt !== undefined) {
      assert.ok(!rebuilt.equals(target));
      assert.throws(() => verifyFileContent(file, rebuilt), code('FLT_HASH_MISMATCH'));
    }
  });

  void it('a truncated delta, garbage, or an empty delta is FLT_DELTA_INVALID', () => {
    const base = seededBytes(1, 200_000);
    const target = edited(base);
    const delta = encodeDelta(base, target);
    for (const bad of [
      delta.subarray(0, delta.length - 1),
      delta.subarray(0, Math.floor(delta.length / 2)),
      delta.subarray(0, 4),
      seededBytes(5, delta.length),
      Buffer.concat([delta.subarray(0, 8), seededBytes(6, 100)]),
      Buffer.alloc(0),
    ])
      assert.throws(() => decodeDelta(base, bad, target.length), code('FLT_DELTA_INVALID'));
  });

  void it('the expected length must be exact', () => {
    const base = seededBytes(1, 200_000);
    const target = edited(base);
    const delta = encodeDelta(base, target);
    assert.throws(() => decodeDelta(base, delta, target.length - 1), code('FLT_DELTA_INVALID'));
    assert.throws(() => decodeDelta(base, delta, 0), code('FLT_DELTA_INVALID'));
    assert.throws(
      () => decodeDelta(base, delta, target.length + 1),
      (error: unknown) => {
        code('FLT_DELTA_INVALID')(error);
        assert.deepEqual((error as { details?: unknown }).details, {
          written: target.length,
          expectedLength: target.length + 1,
        });
        return true;
      },
    );
  });

  void it('decodes into a caller buffer, one after another; a buffer too small is refused', () => {
    const base = seededBytes(3, 200_000);
    const first = Buffer.from(base);
    first.write('first edit', 50_000);
    const second = Buffer.from(base.subarray(0, 150_000));
    second.write('second edit', 10_000);
    const into = Buffer.alloc(300_000, 0xaa);
    const a = decodeDelta(base, encodeDelta(base, first), first.length, into);
    assert.equal(a.buffer, into.buffer, 'a view of the buffer given');
    assert.deepEqual(a, first);
    // The same buffer again, with a shorter file and then with no dictionary at all.
    assert.deepEqual(decodeDelta(base, encodeDelta(base, second), second.length, into), second);
    const tiny = Buffer.from('no dictionary below 8 bytes');
    assert.deepEqual(
      decodeDelta(Buffer.alloc(3), encodeDelta(Buffer.alloc(3), tiny), tiny.length, into),
      tiny,
    );
    assert.throws(
      () => decodeDelta(base, encodeDelta(base, first), first.length, Buffer.alloc(10)),
      (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_VALIDATION',
    );
  });

  void it('a base starting with the zstd dictionary magic is refused both ways', () => {
    const base = Buffer.concat([DICTIONARY_MAGIC, seededBytes(4, 1_000)]);
    assert.equal(usableAsDeltaBase(base), false);
    assert.equal(usableAsDeltaBase(base.subarray(1)), true);
    assert.equal(usableAsDeltaBase(DICTIONARY_MAGIC.subarray(0, 3)), true);
    assert.throws(() => encodeDelta(base, Buffer.from('target')), code('FLT_VALIDATION'));
    const delta = encodeDelta(Buffer.alloc(0), Buffer.from('target'));
    assert.throws(() => decodeDelta(base, delta, 6), code('FLT_DELTA_INVALID'));
    // The magic anywhere but at the start is ordinary content.
    const later = Buffer.concat([Buffer.from('xxxx'), DICTIONARY_MAGIC, seededBytes(4, 1_000)]);
    const target = edited(Buffer.concat([later, later]));
    assert.ok(decodeDelta(later, encodeDelta(later, target), target.length).equals(target));
  });
});

void describe('file content against a file object', () => {
  void it('splits at chunk boundaries and checks each slice and the size', () => {
    const content = seededBytes(8, 10_000);
    const chunks = [
      { id: contentId(content.subarray(0, 4_000)), size: 4_000 },
      { id: contentId(content.subarray(4_000)), size: 6_000 },
    ];
    assert.deepEqual(
      [...splitIntoChunks(chunks, content)].map(({ bytes }) => bytes.length),
      [4_000, 6_000],
    );
    verifyFileContent({ size: 10_000, chunks }, content);
    const changed = Buffer.from(content);
    changed[9_999]! ^= 1;
    assert.throws(() => verifyFileContent({ size: 10_000, chunks }, changed), code('FLT_HASH_MISMATCH'));
    assert.throws(
      () => verifyFileContent({ size: 10_000, chunks }, content.subarray(0, 9_999)),
      code('FLT_HASH_MISMATCH'),
    );
    verifyFileContent({ size: 0, chunks: [] }, Buffer.alloc(0));
  });
});
