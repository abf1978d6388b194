import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FlotillaError,
  errorFromEnvelope,
  parseRetryAfter,
  retryAfterMsOf,
  parseDurationMs,
  formatDurationMs,
} from '@flotilla/protocol';

void test('durations', () => {
  assert.equal(parseDurationMs('7d'), 7 * 86_400_000);
  assert.equal(parseDurationMs('30s'), 30_000);
  assert.equal(parseDurationMs('250ms'), 250);
  assert.equal(parseDurationMs('1500'), 1500);
  assert.throws(() => parseDurationMs('soon'), /invalid duration/);
  assert.throws(() => parseDurationMs('-5s'));
  assert.equal(formatDurationMs(5_400_000), '1h30m');
});

void test('error envelopes round trip', () => {
  const e = new FlotillaError('FLT_REGKEY_REVOKED', 'registration key revoked');
  assert.equal(e.statusCode, 403);
  const back = errorFromEnvelope(403, JSON.parse(JSON.stringify(e.toJSON())));
  assert.equal(back.code, 'FLT_REGKEY_REVOKED');
  assert.equal(errorFromEnvelope(502, 'bad gateway').code, 'FLT_INTERNAL');
});

void test('Retry-After: seconds or an HTTP date; bare 429 and 503 keep their meaning', () => {
  const now = Date.parse('2026-12-06T00:00:00Z');
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter('Sun, 06 Dec 2026 00:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Sat, 05 Dec 2026 00:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), null);
  assert.equal(parseRetryAfter(undefined, now), null);
  const limited = errorFromEnvelope(429, 'Too Many Requests', '5', now);
  assert.equal(limited.code, 'FLT_RATE_LIMITED');
  assert.equal(retryAfterMsOf(limited), 5000);
  assert.match(limited.message, /retry in 5 s/);
  assert.equal(errorFromEnvelope(503, '', null).code, 'FLT_UNAVAILABLE');
  assert.equal(retryAfterMsOf(new Error('x')), null);
});
