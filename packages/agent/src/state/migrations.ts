/**
 * Forward-only, numbered migrations of `<dataDir>/state.db`. Append new ones; never edit or
 * reorder a released one (a device may hold any earlier version).
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'kv',
    sql: `CREATE TABLE kv (
      key TEXT PRIMARY KEY NOT NULL,
      value TEXT NOT NULL,
      updated_at TEXT NOT NULL
    ) STRICT`,
  },
];
