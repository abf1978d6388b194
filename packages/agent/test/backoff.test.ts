import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { Backoff, serverBackoff } from '../src/sync/backoff.js';

void test('the ceiling doubles from the base up to the cap', () => {
  const backoff = new Backoff({ baseMs: 1000, capMs: 10_000, random: () => 0.999999 });
  const delays = Array.from({ length: 7 }, () => backoff.next());
  assert.deepEqual(delays, [999, 1999, 3999, 7999, 9999, 9999, 9999]);
});

void test('full jitter: every delay lies in [0, ceiling)', () => {
  const backoff = new Backoff({ baseMs: 1000, capMs: 60_000 });
  for (let i = 0; i < 200; i++) {
    const ceiling = backoff.ceilingMs();
    const delay = backoff.next();
    assert.ok(delay >= 0 && delay < ceiling, `${delay} not in [0, ${ceiling})`);
  }
  const zero = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0 });
  assert.equal(zero.next(), 0);
});

void test('reset starts again from the base', () => {
  const backoff = new Backoff({ baseMs: 500, capMs: 60_000, random: () => 0.5 });
  backoff.next();
  backoff.next();
  backoff.next();
  assert.equal(backoff.attempts, 3);
  backoff.reset();
  assert.equal(backoff.attempts, 0);
  assert.equal(backoff.next(), 250);
});

void test('thousands of failures never overflow past the cap', () => {
  const backoff = new Backoff({ baseMs: 1000, capMs: 300_000, random: () => 0.5 });
  for (let i = 0; i < 5000; i++) backoff.next();
  assert.equal(backoff.ceilingMs(), 300_000);
  assert.equal(backoff.next(), 150_000);
});

void test('the server policy: base 1s, cap max(poll interval, 5 minutes)', () => {
  assert.equal(serverBackoff(30_000).capMs, 300_000);
  assert.equal(serverBackoff(3_600_000).capMs, 3_600_000);
  assert.equal(serverBackoff(30_000, () => 0.999).ceilingMs(), 1000);
});

void test("a rate-limited error's Retry-After wait is never cut short, and the cap still holds", () => {
  const limited = new FlotillaError('FLT_RATE_LIMITED', 'slow down', { retryAfterMs: 7000 });
  const backoff = new Backoff({ baseMs: 1000, capMs: 60_000, random: () => 0 });
  assert.equal(backoff.nextAfter(limited), 7000);
  assert.equal(backoff.nextAfter(new Error('no wait asked')), 0);
  const capped = new Backoff({ baseMs: 1000, capMs: 5000, random: () => 0 });
  assert.equal(capped.nextAfter(limited), 5000);
});
