/**
 * Statements that update several devices' rows lock them in id order, as assignments do: a
 * last-seen flush over devices an assignment is locking one by one waits instead of deadlocking
 * (PostgreSQL; SQLite has one writer at a time).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { Presence } from '../../src/devices/presence.js';
import { createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { acceptedDevice } from './fixtures.js';

forEachDialect((dialect) => {
  if (dialect !== 'postgres') return;
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ dialect });
  });
  after(() => t.close());

  void test('a last-seen flush over devices an assignment is locking in id order waits for it, no deadlock', async () => {
    const [a, b] = (await Promise.all([acceptedDevice(t), acceptedDevice(t)])).map((d) => d.id).sort();
    // The lower id's row rewritten, so that a scan of the table meets it after the higher one.
    await t.ctx.db.updateTable('devices').set({ hostname: 'moved' }).where('id', '=', a!).execute();
    let lockSecond!: () => void;
    const second = new Promise<void>((resolve) => (lockSecond = resolve));
    // An assignment's locks, taken one at a time here so that the flush starts between them.
    const assignment = t.ctx.db.transaction().execute(async (trx) => {
      await sql`SELECT id FROM devices WHERE id = ${a} FOR UPDATE`.execute(trx);
      await second;
      await sql`SELECT id FROM devices WHERE id = ${b} FOR UPDATE`.execute(trx);
    });
    const presence = new Presence(t.ctx);
    // The higher id first: a statement taking rows in this order would hold b and wait for a.
    const at = new Date('2031-01-01T00:00:00.000Z');
    presence.touch(b!, at);
    presence.touch(a!, at);
    const flushed = presence.flush();
    await sleep(300);
    lockSecond();
    await assignment;
    await flushed;
    const rows = await t.ctx.db
      .selectFrom('devices')
      .select(['id', 'last_seen_at'])
      .where('id', 'in', [a!, b!])
      .execute();
    assert.equal(rows.length, 2);
    for (const row of rows) assert.equal(row.last_seen_at, at.toISOString(), `${row.id} written`);
  });
});
