/**
 * Kysely's SQLite driver prepares every query anew; preparing costs more than running the small
 * indexed queries the hot paths make (the state poll, enrollment). This wraps better-sqlite3 so that
 * `prepare` returns a cached statement for SQL it has seen (bounded, least recently used evicted).
 * Safe because better-sqlite3 runs each statement to completion synchronously.
 */
import type SqliteDatabase from 'better-sqlite3';
import type { SqliteDatabase as KyselySqliteDatabase } from 'kysely';
import { WeightedLru } from '@flotilla/node-kit';

export const STATEMENT_CACHE_SIZE = 500;

export function withStatementCache(
  native: SqliteDatabase.Database,
  size = STATEMENT_CACHE_SIZE,
): KyselySqliteDatabase {
  const cache = new WeightedLru<string, SqliteDatabase.Statement>({ weigh: () => 1, maxWeight: size });
  return {
    close: () => native.close(),
    prepare(sqlText: string) {
      let stmt = cache.get(sqlText);
      if (!stmt) {
        stmt = native.prepare(sqlText);
        cache.set(sqlText, stmt);
      }
      return stmt;
    },
  };
}
