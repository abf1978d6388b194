/**
 * Dialect-aware text matching for filters. `*` is the only wildcard; every other character matches
 * itself. Matching is case-sensitive on both dialects (as `==` is): SQLite's LIKE ignores ASCII case,
 * so SQLite uses GLOB; PostgreSQL uses LIKE with an explicit escape character.
 */
import { sql } from 'kysely';
import type { Expression, RawBuilder, SqlBool } from 'kysely';
import type { Dialect } from '../../db/dialect.js';

export function hasWildcard(value: string): boolean {
  return value.includes('*');
}

/** A GLOB pattern where only `*` is special (`?` and `[` are bracketed to match themselves). */
export function globPattern(value: string): string {
  return value.replace(/[[?]/g, (c) => `[${c}]`);
}

/** A LIKE pattern (escape `\`) where only `*` is special. */
export function likePattern(value: string): string {
  return value.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%');
}

/** `column` matches `value`, with `*` as a wildcard when present, else plain equality. */
export function textMatches(
  dialect: Dialect,
  column: Expression<unknown>,
  value: string,
): RawBuilder<SqlBool> {
  if (!hasWildcard(value)) return sql<SqlBool>`${column} = ${value}`;
  if (dialect === 'sqlite') return sql<SqlBool>`${column} GLOB ${globPattern(value)}`;
  return sql<SqlBool>`${column} LIKE ${likePattern(value)} ESCAPE '\\'`;
}

/** Byte-order comparison (PostgreSQL's default collation would sort by locale, SQLite by bytes). */
export function ordered(dialect: Dialect, column: Expression<unknown>): Expression<unknown> {
  return dialect === 'postgres' ? sql`${column} COLLATE "C"` : column;
}

export type RangeOperator = '<' | '<=' | '>' | '>=';

export function compare(
  dialect: Dialect,
  column: Expression<unknown>,
  op: RangeOperator,
  value: string | number,
): RawBuilder<SqlBool> {
  const left = typeof value === 'number' ? column : ordered(dialect, column);
  return sql<SqlBool>`${left} ${sql.raw(op)} ${value}`;
}
