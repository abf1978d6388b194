/**
 * Kysely's SQLite driver prepares every query anew; preparing costs more than running the small
 * indexed queries the hot paths make (the state poll, enrollment). This wraps better-sqlite3 so that
 * `prepare` returns a cached statement for SQL it has seen (bounded, least recently used evicted).
 * Safe because better-sqlite3 runs each statement to completion synchronously.
 */
import type SqliteDatabase from 'better-sqlite3';
import type { SqliteDatabase as KyselySqliteDatabase } from 'kysely';

export const STATEMENT_CACHE_SIZE = 500;

export function withStatementCache(
  native: SqliteDatabase.Database,
  size = STATEMENT_CACHE_SIZE,
): KyselySqliteDatabase {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => native.close(),
    prepare(sqlText: string) {
      let stmt = cache.get(sqlText);
      if (stmt) {
        cache.delete(sqlText);
      } else {
        stmt = native.prepare(sqlText);
        if (cache.size >= size) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
      }
      cache.set(sqlText, stmt);
      return stmt;
    },
  };
}
