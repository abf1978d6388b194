import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WeightedLru } from '../src/cache/weighted-lru.js';

const bytes = (n: number) => 'x'.repeat(n);

void test('the least recently used values go first once the weight is over the bound', () => {
  const lru = new WeightedLru<string, string>({ weigh: (v) => v.length, maxWeight: 10 });
  lru.set('a', bytes(4));
  lru.set('b', bytes(4));
  assert.equal(lru.get('a'), bytes(4)); // a is now the most recently used
  lru.set('c', bytes(4));
  assert.deepEqual([...lru.keys()], ['a', 'c']);
  assert.equal(lru.weight, 8);
  assert.equal(lru.size, 2);
});

void test('peek and has leave recency alone; a value heavier than the item bound is not kept', () => {
  const lru = new WeightedLru<string, string>({ weigh: (v) => v.length, maxWeight: 10, maxItemWeight: 5 });
  lru.set('a', bytes(3));
  lru.set('b', bytes(3));
  assert.equal(lru.peek('a'), bytes(3));
  assert.ok(lru.has('a'));
  lru.set('c', bytes(6));
  assert.equal(lru.has('c'), false);
  lru.set('d', bytes(5));
  assert.deepEqual([...lru.keys()], ['b', 'd']);
  assert.deepEqual([...lru.values()], [bytes(3), bytes(5)]);
});

void test('the entry bound holds too, and an empty value still counts', () => {
  const lru = new WeightedLru<number, string>({ weigh: (v) => v.length, maxWeight: 1000, maxEntries: 2 });
  lru.set(1, '');
  lru.set(2, 'x');
  lru.set(3, 'y');
  assert.deepEqual([...lru.keys()], [2, 3]);
  lru.delete(2);
  assert.equal(lru.size, 1);
  assert.equal(lru.weight, 1);
});
