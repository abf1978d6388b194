import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { Codecs, FRAME_HEADER_LENGTH, decodeFrame, encodeFrame, readFrameHeader } from '../src/index.js';
import type { CodecName } from '../src/index.js';
import { seededBytes } from './helpers.js';

const text = Buffer.from('flotilla deploys software to fleets of machines. '.repeat(2000));

function frameWith(codec: number, declaredLength: number, payload: Uint8Array): Buffer {
  const header = Buffer.from([0xf1, 0x0c, 1, codec, 0, 0, 0, 0]);
  header.writeUInt32BE(declaredLength, 4);
  return Buffer.concat([header, payload]);
}

void describe('codec frames', () => {
  for (const codec of Object.keys(Codecs) as CodecName[]) {
    void it(`round trips with ${codec}`, () => {
      const frame = encodeFrame(text, { codec });
      assert.equal(readFrameHeader(frame).codec, codec);
      if (codec !== 'none')
        assert.ok(frame.length < text.length / 10, `${codec} should compress repetitive text`);
      assert.ok(decodeFrame(frame).equals(text));
    });
  }

  void it('stores incompressible data uncompressed and empty data as an empty frame', () => {
    const noise = seededBytes(11, 64 * 1024);
    const frame = encodeFrame(noise);
    assert.equal(readFrameHeader(frame).codec, 'none');
    assert.equal(frame.length, noise.length + FRAME_HEADER_LENGTH);
    assert.ok(decodeFrame(frame).equals(noise));
    assert.equal(decodeFrame(encodeFrame(Buffer.alloc(0))).length, 0);
  });

  void it('uses zstd by default', () => {
    assert.equal(readFrameHeader(encodeFrame(text)).codec, 'zstd');
  });

  void it('refuses bad magic, unknown versions and codecs, and short frames', () => {
    const good = encodeFrame(text);
    const badMagic = Buffer.from(good);
    badMagic[0] = 0;
    const badVersion = Buffer.from(good);
    badVersion[2] = 9;
    const badCodec = Buffer.from(good);
    badCodec[3] = 42;
    for (const frame of [badMagic, badVersion, badCodec, good.subarray(0, 5)]) {
      assert.throws(() => decodeFrame(frame), { code: 'FLT_CHUNK_ENCODING_INVALID' });
    }
  });

  void it('refuses a frame declaring more than the limit before decompressing', () => {
    const frame = frameWith(Codecs.zstd, 0xffffffff, Buffer.alloc(10));
    assert.throws(() => decodeFrame(frame), { code: 'FLT_LIMIT_EXCEEDED' });
    assert.throws(() => decodeFrame(encodeFrame(text), 1000), { code: 'FLT_LIMIT_EXCEEDED' });
  });

  void it('never inflates past the declared length (decompression bombs)', () => {
    const bomb = Buffer.alloc(10 * 1024 * 1024);
    for (const codec of ['zstd', 'gzip', 'brotli'] as const) {
      const honest = encodeFrame(bomb, { codec });
      const lying = Buffer.from(honest);
      lying.writeUInt32BE(1024, 4);
      assert.throws(() => decodeFrame(lying), { code: 'FLT_CHUNK_ENCODING_INVALID' }, codec);
    }
  });

  void it('refuses a frame whose payload is shorter than declared, or corrupt', () => {
    const short = frameWith(Codecs.none, 100, Buffer.alloc(50));
    assert.throws(() => decodeFrame(short), { code: 'FLT_CHUNK_ENCODING_INVALID' });
    const gz = gzipSync(text);
    gz[gz.length - 6]! ^= 0xff;
    assert.throws(() => decodeFrame(frameWith(Codecs.gzip, text.length, gz)), {
      code: 'FLT_CHUNK_ENCODING_INVALID',
    });
    const zstdFrame = encodeFrame(text, { codec: 'zstd' });
    assert.throws(() => decodeFrame(zstdFrame.subarray(0, zstdFrame.length - 4)), {
      code: 'FLT_CHUNK_ENCODING_INVALID',
    });
  });

  void it('refuses an unknown codec name when encoding', () => {
    assert.throws(() => encodeFrame(text, { codec: 'lz4' as CodecName }), { code: 'FLT_VALIDATION' });
  });
});
