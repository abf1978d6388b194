import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relativeTime, shortId } from '../src/output/format.js';
import { renderTable } from '../src/output/table.js';

void test('relative times read as humans say them', () => {
  const now = new Date('2026-01-01T12:00:00Z');
  assert.equal(relativeTime(null, now), '-');
  assert.equal(relativeTime('2026-01-01T11:59:59.500Z', now), 'just now');
  assert.equal(relativeTime('2026-01-01T11:59:15Z', now), '45s ago');
  assert.equal(relativeTime('2026-01-01T10:45:00Z', now), '1h ago');
  assert.equal(relativeTime('2026-01-08T11:59:00Z', now), 'in 7d');
  assert.equal(relativeTime('2025-12-25T12:00:00Z', now), '7d ago');
  assert.equal(relativeTime('2026-01-08T12:00:00Z', now), 'in 7d');
  assert.equal(relativeTime('garbage', now), 'garbage');
});

void test('short ids keep 12 characters', () => {
  assert.equal(shortId('0123456789abcdef0123456789abcdef'), '0123456789ab');
  assert.equal(shortId('rk_1'), 'rk_1');
});

void test('tables are borderless and uncolored off a terminal', () => {
  const text = renderTable(
    ['id', 'name'],
    [
      ['a', 'first'],
      ['bb', 'second'],
    ],
    false,
  );
  assert.equal(text, 'ID  NAME\na   first\nbb  second');
  assert.ok(!text.includes('\u001b['));
  assert.ok(renderTable(['id'], [['a']], true).includes('\u001b[1mID'));
});
