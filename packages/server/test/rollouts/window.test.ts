/** Maintenance windows (time zones, days, past midnight, daylight saving) and wave sizes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFlotillaError } from '@flotilla/protocol';
import { nextOpening, parseWindow, windowOpen } from '../../src/rollouts/window.js';
import { checkWaves, waveSizes } from '../../src/rollouts/waves.js';

const at = (iso: string) => new Date(iso);

void test('a window in a time zone opens and closes at local times, on its days only', () => {
  const w = parseWindow('Mon-Fri 01:00-05:00 Europe/Helsinki');
  // 2030-01-01 is a Tuesday; Helsinki is UTC+2 in winter.
  assert.equal(windowOpen(w, at('2030-01-01T22:59:00Z')), false); // Wed 00:59
  assert.equal(windowOpen(w, at('2030-01-01T23:00:00Z')), true); // Wed 01:00
  assert.equal(windowOpen(w, at('2030-01-02T02:59:00Z')), true); // Wed 04:59
  assert.equal(windowOpen(w, at('2030-01-02T03:00:00Z')), false); // Wed 05:00
  assert.equal(windowOpen(w, at('2030-01-05T00:00:00Z')), false); // Sat 02:00
  // Summer time (UTC+3): the same local hours are an hour earlier in UTC.
  assert.equal(windowOpen(w, at('2030-07-02T22:00:00Z')), true); // Wed 01:00 EEST
  assert.equal(windowOpen(w, at('2030-07-03T02:00:00Z')), false); // Wed 05:00 EEST
  assert.deepEqual(nextOpening(w, at('2030-01-04T12:00:00Z')), at('2030-01-06T23:00:00Z')); // Fri noon → Mon 01:00
});

void test('a window past midnight belongs to the day it starts; days as lists; UTC by default', () => {
  const w = parseWindow('Sat,Sun 22:00-02:00');
  assert.equal(w.timeZone, 'UTC');
  assert.equal(windowOpen(w, at('2030-01-05T23:00:00Z')), true); // Sat 23:00
  assert.equal(windowOpen(w, at('2030-01-06T01:00:00Z')), true); // Sun 01:00 (Saturday's)
  assert.equal(windowOpen(w, at('2030-01-07T01:00:00Z')), true); // Mon 01:00 (Sunday's)
  assert.equal(windowOpen(w, at('2030-01-08T01:00:00Z')), false); // Tue 01:00
  assert.equal(windowOpen(parseWindow('00:00-24:00'), at('2030-01-08T13:00:00Z')), true);
});

void test('bad windows are FLT_WINDOW_INVALID', () => {
  for (const text of [
    'Mon-Fri',
    'Mon-Fri 1-5',
    'Mon-Fry 01:00-05:00',
    'Mon-Fri 01:00-01:00',
    'Mon-Fri 25:00-26:00',
    'Mon-Fri 01:00-05:00 Mars/Olympus',
    'Mon-Fri 01:00-05:00 UTC extra',
  ])
    assert.throws(
      () => parseWindow(text),
      (e: unknown) => isFlotillaError(e) && e.code === 'FLT_WINDOW_INVALID',
      text,
    );
});

void test('waves are cumulative: percents round up, counts cap at the matched devices', () => {
  assert.deepEqual(waveSizes(['1%', '10%', '50%', '100%'], 60), [1, 5, 24, 30]);
  assert.deepEqual(waveSizes(['10', '100%'], 4), [4, 0]);
  assert.deepEqual(waveSizes(['1%', '100%'], 0), [0, 0]);
  assert.deepEqual(waveSizes(['50%'], 10), [5], 'devices past the last wave are left out');
  assert.doesNotThrow(() => checkWaves(['5', '10%', '100%']));
  for (const bad of [['50%', '10%'], ['10', '5'], ['0%'], ['abc']])
    assert.throws(
      () => checkWaves(bad),
      (e: unknown) => isFlotillaError(e) && e.code === 'FLT_WAVES_INVALID',
      bad.join(','),
    );
});
