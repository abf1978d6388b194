/** The simulator's knobs as the CLI spells them; bad input is FLT_VALIDATION naming the value. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFlotillaError } from '@flotilla/protocol';
import { parseCrashSpec, parseDurationRange, parseRate } from '../src/options.js';

void test('durations, ranges, rates and crash specs parse as documented', () => {
  assert.deepEqual(parseDurationRange('--install-time', '2s..20s'), { minMs: 2_000, maxMs: 20_000 });
  assert.deepEqual(parseDurationRange('--install-time', '500ms'), { minMs: 500, maxMs: 500 });
  assert.equal(parseRate('--failure-rate', '1%'), 0.01);
  assert.equal(parseRate('--failure-rate', '0.25'), 0.25);
  assert.equal(parseRate('--failure-rate', '100%'), 1);
  assert.deepEqual(parseCrashSpec('--crash-after', '20s:0.5%'), { afterMs: 20_000, rate: 0.005 });
});

void test('bad values are refused with FLT_VALIDATION', () => {
  const refused = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(
      fn,
      (e: unknown) => isFlotillaError(e) && e.code === 'FLT_VALIDATION' && pattern.test(e.message),
    );
  refused(() => parseDurationRange('--install-time', '20s..2s'), /ends before it starts/);
  refused(() => parseDurationRange('--install-time', '1s..2s..3s'), /range/);
  refused(() => parseDurationRange('--install-time', 'soon'), /duration/);
  refused(() => parseRate('--failure-rate', '101%'), /between 0% and 100%/);
  refused(() => parseRate('--failure-rate', '-1'), /between/);
  refused(() => parseRate('--failure-rate', 'many'), /rate such as/);
  refused(() => parseRate('--failure-rate', '%'), /rate such as/);
  refused(() => parseCrashSpec('--crash-after', '20s'), /AFTER:RATE/);
  refused(() => parseCrashSpec('--crash-after', '20s:2'), /between/);
});
