import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkerPool, ownedBuffers } from '../src/workers/pool.js';

const MODULE = new URL('./fixtures/double-worker.js', import.meta.url).href;

type Task = { bytes: Uint8Array; crash?: boolean };

void test('tasks run on worker threads; moved buffers leave this thread, results come back', async (t) => {
  const pool = new WorkerPool<Task, { bytes: Uint8Array }>({ filename: MODULE, threads: 2 });
  t.after(() => pool.close());
  const input = new Uint8Array([1, 2, 3]);
  const results = await Promise.all([
    pool.run({ bytes: input }, ownedBuffers(input)),
    pool.run({ bytes: new Uint8Array([100, 200]) }),
  ]);
  assert.deepEqual([...results[0].bytes], [2, 4, 6]);
  assert.deepEqual([...results[1].bytes], [200, 144]);
  assert.equal(input.byteLength, 0, 'the input moved to the worker');
});

void test('a crashed worker fails its task and is replaced; close fails what is left', async (t) => {
  const pool = new WorkerPool<Task, { bytes: Uint8Array }>({ filename: MODULE, threads: 1 });
  t.after(() => pool.close());
  await assert.rejects(pool.run({ bytes: new Uint8Array(1), crash: true }));
  assert.deepEqual([...(await pool.run({ bytes: new Uint8Array([7]) })).bytes], [14]);
  await pool.close();
  await assert.rejects(pool.run({ bytes: new Uint8Array(1) }));
});

void test('only buffers that own their whole memory are moved', () => {
  const whole = new Uint8Array(8);
  const slice = Buffer.from('a small string from the pool');
  assert.equal(ownedBuffers(whole, slice).length, 1);
});
