/** The bound on live enrollment nonces: refuses past the limit, frees budget as nonces expire. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { NonceBudget } from '../../src/devices/enroll/nonce-budget.js';

void it('refuses the nonce past the limit until older ones expire', () => {
  const budget = new NonceBudget(3);
  for (let t = 0; t < 3; t++) budget.take(t, t + 100);
  assert.throws(
    () => budget.take(50, 150),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_RATE_LIMITED' && e.statusCode === 429,
  );
  budget.take(100, 200); // the first expired at 100
  assert.throws(() => budget.take(100, 200));
  budget.take(102, 202);
});

void it('stays bounded over a long run', () => {
  const budget = new NonceBudget(10);
  for (let t = 0; t < 100_000; t++) budget.take(t, t + 10);
  assert.throws(() => {
    for (let i = 0; i < 11; i++) budget.take(200_000, 200_010);
  });
});
