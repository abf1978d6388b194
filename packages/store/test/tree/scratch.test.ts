import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ScratchPool } from '../../src/tree/scratch.js';

void describe('scratch buffers', () => {
  void it('hands back the smallest kept buffer that fits, and a fresh one while it is in use', () => {
    const pool = new ScratchPool();
    const a = pool.take(100_000);
    assert.ok(a.length >= 100_000);
    const b = pool.take(100_000);
    assert.notEqual(a.buffer, b.buffer, 'a buffer in use is never handed out twice');
    const big = pool.take(5_000_000);
    pool.give(a);
    pool.give(big);
    assert.equal(pool.take(50_000).buffer, a.buffer, 'the smaller one that fits');
    assert.equal(pool.take(3_000_000).buffer, big.buffer);
    pool.give(b);
  });

  void it('runs work with a buffer and takes it back even when the work fails', async () => {
    const pool = new ScratchPool();
    let seen: Buffer | undefined;
    await assert.rejects(
      pool.with(1000, (buffer) => {
        seen = buffer;
        return Promise.reject(new Error('boom'));
      }),
    );
    assert.equal(
      pool.withSync(10, (buffer) => buffer.buffer),
      seen?.buffer,
    );
  });

  void it('does not keep a buffer larger than its bound', () => {
    const pool = new ScratchPool();
    const huge = pool.take(40 * 1024 * 1024);
    pool.give(huge);
    assert.notEqual(pool.take(40 * 1024 * 1024).buffer, huge.buffer);
  });
});
