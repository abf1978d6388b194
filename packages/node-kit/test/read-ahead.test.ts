import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readAhead } from '../src/concurrency/read-ahead.js';

/** A read per item that resolves only when the test says so; records which reads began. */
function controlledReads(): {
  begun: number[];
  read: (n: number) => Promise<number>;
  finish: (n: number, error?: Error) => void;
} {
  const begun: number[] = [];
  const settle = new Map<number, (error?: Error) => void>();
  return {
    begun,
    read: (n) => {
      begun.push(n);
      return new Promise((resolve, reject) =>
        settle.set(n, (error) => (error ? reject(error) : resolve(n * 10))),
      );
    },
    finish: (n, error) => settle.get(n)!(error),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

void test('readAhead yields in order, with reads begun ahead up to the limit by weight', async () => {
  const r = controlledReads();
  const items = [1, 2, 3, 4, 5];
  const it = readAhead(items, r.read, 5, (n) => n);
  const first = it.next();
  await tick();
  // 1 + 2 + 3 reach the limit of 5: three reads under way.
  assert.deepEqual(r.begun, [1, 2, 3]);
  r.finish(2);
  r.finish(1);
  assert.deepEqual(await first, { done: false, value: 10 });
  const second = it.next();
  await tick();
  // 1 was handed on: 2 + 3 = 5 still under way, so 4 waits.
  assert.deepEqual(r.begun, [1, 2, 3]);
  assert.deepEqual(await second, { done: false, value: 20 });
  const third = it.next();
  await tick();
  assert.deepEqual(r.begun, [1, 2, 3, 4]);
  r.finish(3);
  assert.deepEqual(await third, { done: false, value: 30 });
  const fourth = it.next();
  await tick();
  // An item heavier than the limit still gets its read when nothing is ahead of it.
  assert.deepEqual(r.begun, [1, 2, 3, 4, 5]);
  r.finish(5);
  r.finish(4);
  assert.deepEqual(await fourth, { done: false, value: 40 });
  assert.deepEqual(await it.next(), { done: false, value: 50 });
  assert.deepEqual(await it.next(), { done: true, value: undefined });
});

void test('readAhead throws a failed read at its turn; reads begun ahead of an early stop are dropped', async () => {
  const r = controlledReads();
  const it = readAhead([1, 2, 3], r.read, 3);
  const first = it.next();
  await tick();
  r.finish(3, new Error('dropped, never seen'));
  r.finish(2, new Error('read 2 failed'));
  r.finish(1);
  assert.deepEqual(await first, { done: false, value: 10 });
  await assert.rejects(it.next(), /read 2 failed/);
  // The generator is over; read 3's failure was never an unhandled rejection.
  assert.deepEqual(await it.next(), { done: true, value: undefined });
});
