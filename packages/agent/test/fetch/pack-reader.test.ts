import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { readPack } from '../../src/fetch/pack-reader.js';

const idOf = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const record = (id: string, bytes: Buffer, length = bytes.length) => {
  const header = Buffer.alloc(36);
  Buffer.from(id, 'hex').copy(header);
  header.writeUInt32BE(length, 32);
  return Buffer.concat([header, bytes]);
};
const END = Buffer.alloc(32);
function pieces(data: Buffer, size: number): Iterable<Buffer> {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return parts;
}
const a = Buffer.from('alpha');
const b = Buffer.from('bravo!');

void test('records split across any read sizes are verified and handed on in order', async () => {
  const pack = Buffer.concat([record(idOf(a), a), record(idOf(b), b), END]);
  for (const size of [1, 3, 7, 1000]) {
    const got: string[] = [];
    await readPack(pieces(pack, size), new Set([idOf(a), idOf(b)]), 1024, (id, bytes) => {
      got.push(`${id.slice(0, 4)}:${Buffer.from(bytes).toString()}`);
      return Promise.resolve();
    });
    assert.deepEqual(got, [`${idOf(a).slice(0, 4)}:alpha`, `${idOf(b).slice(0, 4)}:bravo!`]);
  }
});

void test('hostile packs are refused with stable codes; records before the problem were kept', async () => {
  const want = new Set([idOf(a), idOf(b)]);
  const cases: [string, Buffer, string][] = [
    [
      'unrequested',
      Buffer.concat([record(idOf(Buffer.from('x')), Buffer.from('x')), END]),
      'FLT_PACK_INVALID',
    ],
    ['duplicate', Buffer.concat([record(idOf(a), a), record(idOf(a), a), END]), 'FLT_PACK_INVALID'],
    ['wrong bytes', Buffer.concat([record(idOf(a), b), END]), 'FLT_HASH_MISMATCH'],
    ['oversized', Buffer.concat([record(idOf(a), a, 5000), END]), 'FLT_LIMIT_EXCEEDED'],
    ['after end', Buffer.concat([record(idOf(a), a), END, Buffer.from('x')]), 'FLT_PACK_INVALID'],
    ['truncated', record(idOf(a), a).subarray(0, 38), 'FLT_NETWORK'],
    ['no end marker', record(idOf(a), a), 'FLT_NETWORK'],
  ];
  for (const [name, pack, code] of cases) {
    const kept: string[] = [];
    await assert.rejects(
      readPack(pieces(pack, 4), want, 1024, (id) => {
        kept.push(id);
        return Promise.resolve();
      }),
      { code },
      name,
    );
    if (name === 'duplicate' || name === 'no end marker') assert.deepEqual(kept, [idOf(a)], name);
  }
});

void test('a pack read from memory lets the event loop turn while its records are stored', async () => {
  // Every piece at hand at once (as a fast connection leaves them buffered): the old reader ran the
  // whole pack in microtasks, and an I/O callback waiting meanwhile (the engine's connection to the
  // loopback registry) ran only after the last record.
  const records = Array.from({ length: 40 }, (_, i) => Buffer.from(`record ${i}`));
  const pack = Buffer.concat([...records.map((r) => record(idOf(r), r)), END]);
  let turned = false;
  let storedWhenTurned = -1;
  let stored = 0;
  setImmediate(() => {
    turned = true;
    storedWhenTurned = stored;
  });
  await readPack(pieces(pack, 64), new Set(records.map(idOf)), 1024, () => {
    const until = performance.now() + 2; // a slow disk: 2 ms per record, 80 ms in all
    while (performance.now() < until);
    stored++;
    return Promise.resolve();
  });
  assert.equal(stored, 40);
  assert.ok(turned && storedWhenTurned < 40, `the event loop turned only after ${storedWhenTurned} records`);
});
