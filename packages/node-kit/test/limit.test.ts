import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyedSerialQueue, concurrencyLimit, serialQueue } from '../src/concurrency/limit.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

void test('a limit keeps at most N in flight and starts the others in order', async () => {
  const limit = concurrencyLimit(2);
  let active = 0;
  let most = 0;
  const started: number[] = [];
  await Promise.all(
    [0, 1, 2, 3, 4].map((i) =>
      limit(async () => {
        started.push(i);
        active++;
        most = Math.max(most, active);
        await tick();
        active--;
      }),
    ),
  );
  assert.equal(most, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
});

void test('a serial queue runs one after another and a failure does not stop the next', async () => {
  const serial = serialQueue();
  const order: string[] = [];
  const first = serial(async () => {
    await tick();
    order.push('a');
    throw new Error('a failed');
  });
  const second = serial(() => Promise.resolve(order.push('b')));
  await assert.rejects(first, /a failed/);
  assert.equal(await second, 2);
  assert.deepEqual(order, ['a', 'b']);
});

void test('a keyed queue serialises per key, runs keys side by side, and forgets idle keys', async () => {
  const queue = new KeyedSerialQueue();
  const order: string[] = [];
  const job = (name: string) => async () => {
    order.push(`${name}+`);
    await tick();
    order.push(`${name}-`);
  };
  await Promise.all([queue.run('x', job('x1')), queue.run('x', job('x2')), queue.run('y', job('y1'))]);
  assert.ok(order.indexOf('x1-') < order.indexOf('x2+'));
  assert.ok(order.indexOf('y1+') < order.indexOf('x1-'), 'another key does not wait');
  assert.equal(queue.size, 0);
});
