import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { looksIncompressible } from '../../src/convert/incompressible.js';
import { BLOCK_SIZE, compressBlock } from '../../src/convert/sqfs-writer.js';

const UNCOMPRESSED = 1 << 24;

/** Deterministic random-looking bytes (SHA-256 in counter mode), so that failures repeat. */
function noise(length: number, seed: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0, got = 0; got < length; i++, got += 32)
    parts.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(parts).subarray(0, length);
}

/** English-like text: words from a small vocabulary in a fixed pseudo-random order. */
function text(length: number, seed: string): Buffer {
  const words = ['squashfs', 'block', 'image', 'layer', 'the', 'of', 'gateway', 'registry', 'file', 'and'];
  const r = noise(length, seed);
  let out = '';
  for (let i = 0; out.length < length; i++) out += `${words[(r[i % r.length] as number) % words.length]} `;
  return Buffer.from(out.slice(0, length));
}

/** Bytes saved by deflate at level 9 (what the writer did for every block before), as a fraction. */
function deflateSaving(block: Buffer): number {
  return 1 - deflateSync(block, { level: 9 }).length / block.length;
}

async function assertAsBefore(block: Buffer): Promise<void> {
  const packed = deflateSync(block, { level: 9 });
  const { bytes, word } = await compressBlock(block);
  if (packed.length < block.length) {
    assert.equal(word, packed.length);
    assert.ok(bytes.equals(packed), 'the same deflate output as before');
  } else {
    assert.equal(word, block.length | UNCOMPRESSED);
    assert.ok(bytes.equals(block));
  }
}

void describe('incompressible block heuristic', () => {
  void it('stores random and already compressed blocks raw without deflating them', async () => {
    const cases = [
      noise(BLOCK_SIZE, 'a'),
      noise(BLOCK_SIZE - 1000, 'b'),
      noise(20_000, 'c'), // a file's short last block
      gzipSync(Buffer.concat([text(200_000, 'd'), noise(BLOCK_SIZE, 'e')])).subarray(0, BLOCK_SIZE),
    ];
    for (const block of cases) {
      assert.equal(looksIncompressible(block), true);
      const { bytes, word } = await compressBlock(block);
      assert.equal(word, block.length | UNCOMPRESSED);
      assert.equal(bytes, block, 'the block itself, not a copy');
      assert.ok(deflateSaving(block) < 0.001, 'deflate would not have shrunk it either');
    }
  });

  void it('deflates compressible blocks exactly as before', async () => {
    const pool = Array.from({ length: 16 }, (_, i) => noise(1024, `chunk${i}`));
    const order = noise(128, 'order');
    const withCopy = noise(BLOCK_SIZE, 'f');
    withCopy.copy(withCopy, 126 * 1024, 116 * 1024, 118 * 1024); // 2 KiB repeated 10 KiB later
    const withText = noise(BLOCK_SIZE, 'g');
    text(3072, 'h').copy(withText, 60_000);
    const withZeros = noise(BLOCK_SIZE, 'i');
    withZeros.fill(0, 90_000, 92_048);
    const base64 = Buffer.from(noise(BLOCK_SIZE, 'j').toString('base64')).subarray(0, BLOCK_SIZE);
    const cases: [string, Buffer][] = [
      ['text', text(BLOCK_SIZE, 'k')],
      ['zeros', Buffer.alloc(BLOCK_SIZE)],
      ['repeated random 1 KiB chunks', Buffer.concat([...order].map((b) => pool[b % 16] as Buffer))],
      [
        'one random 1 KiB chunk repeated',
        Buffer.concat(Array.from({ length: 128 }, () => pool[0] as Buffer)),
      ],
      ['random with 2 KiB repeated', withCopy],
      ['random with 3 KiB of text', withText],
      ['random with 2 KiB of zeros', withZeros],
      ['base64', base64],
      ['half random, half text', Buffer.concat([noise(BLOCK_SIZE / 2, 'l'), text(BLOCK_SIZE / 2, 'm')])],
      ['a short text block', text(5000, 'n')],
      ['a tiny random block (never judged)', noise(1000, 'o')],
    ];
    for (const [name, block] of cases) {
      if (block.length >= 4096) assert.equal(looksIncompressible(block), false, name);
      assert.ok(block.length < 4096 || deflateSaving(block) > 0.005, `${name}: deflate saves something`);
      await assertAsBefore(block);
    }
  });

  void it('gives up compression only where deflate would save less than 1 %', () => {
    // Random blocks with a little of something compressible at a random place: whenever the
    // heuristic says "incompressible", deflate could not have saved 1 % of the block.
    const r = noise(4096, 'mix');
    let judgedRaw = 0;
    for (let i = 0; i < 120; i++) {
      const block = noise(BLOCK_SIZE, `mix${i}`);
      const size = 64 + (r.readUInt16LE(2 * i) % 4096);
      const at = r.readUInt16LE(1024 + 2 * i) % (BLOCK_SIZE - size);
      switch (i % 3) {
        case 0:
          text(size, `t${i}`).copy(block, at);
          break;
        case 1:
          block.fill(0, at, at + size);
          break;
        default: {
          const from = Math.max(0, at - 1 - (r.readUInt16LE(2048 + 2 * i) % 30_000));
          block.copy(block, at, from, from + size);
        }
      }
      if (looksIncompressible(block)) {
        judgedRaw++;
        assert.ok(
          deflateSaving(block) < 0.01,
          `case ${i} (${size} bytes): deflate saves ${deflateSaving(block)}`,
        );
      }
    }
    assert.ok(judgedRaw > 5 && judgedRaw < 110, `${judgedRaw} of 120 judged incompressible`);
  });
});
