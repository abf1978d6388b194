import { test } from 'node:test';
import assert from 'node:assert/strict';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { withStatementCache } from '../../src/db/statement-cache.js';

void test('prepared statements are reused per SQL text and evicted least recently used first', async () => {
  const native = new SqliteDatabase(':memory:');
  let prepared = 0;
  const realPrepare = native.prepare.bind(native);
  native.prepare = ((text: string) => {
    prepared++;
    return realPrepare(text);
  }) as never;
  const db = new Kysely<Record<string, never>>({
    dialect: new SqliteDialect({ database: withStatementCache(native, 2) }),
  });
  await sql`create table t (x integer)`.execute(db);
  for (let i = 0; i < 5; i++) await sql`insert into t (x) values (${i})`.execute(db);
  const rows = await sql<{ n: number }>`select count(*) as n from t`.execute(db);
  assert.equal(rows.rows[0]?.n, 5, 'cached statements still bind fresh parameters');
  const before = prepared;
  await sql`insert into t (x) values (${9})`.execute(db);
  assert.equal(prepared, before, 'a recent statement is not prepared again');
  await sql`select 1 as a`.execute(db);
  await sql`select 2 as b`.execute(db);
  await sql`insert into t (x) values (${10})`.execute(db);
  assert.equal(prepared, before + 3, 'the cache holds two statements; the insert was evicted');
  await db.destroy();
});
