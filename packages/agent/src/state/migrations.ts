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
  {
    version: 2,
    name: 'updates',
    // installed releases per app (role current/previous), the in-flight update transaction per app
    // (docs/updates.md "The transaction"), and chunk-cache recency for LRU eviction.
    sql: `CREATE TABLE app_release (
      app TEXT NOT NULL,
      root TEXT NOT NULL,
      release TEXT NOT NULL,
      role TEXT NOT NULL CHECK (role IN ('current', 'previous')),
      since TEXT NOT NULL,
      PRIMARY KEY (app, root)
    ) STRICT;
    CREATE TABLE app_hold (
      app TEXT PRIMARY KEY NOT NULL,
      rejected_root TEXT NOT NULL,
      reason TEXT NOT NULL,
      since TEXT NOT NULL
    ) STRICT;
    CREATE TABLE update_journal (
      app TEXT PRIMARY KEY NOT NULL,
      txn TEXT NOT NULL,
      mode TEXT NOT NULL CHECK (mode IN ('update', 'rollback')),
      from_release TEXT,
      to_release TEXT NOT NULL,
      step TEXT NOT NULL,
      attempts INTEGER NOT NULL,
      reason TEXT,
      bytes_fetched INTEGER NOT NULL DEFAULT 0,
      updated_at TEXT NOT NULL
    ) STRICT;
    CREATE TABLE chunk_use (
      id TEXT PRIMARY KEY NOT NULL,
      used_at INTEGER NOT NULL
    ) STRICT`,
  },
  {
    version: 3,
    name: 'release-stamps',
    // Per staged release, the inode stamps of its files verified when it was staged (store's
    // encodeStamps): the next staging links a file its stamp vouches for without reading it.
    sql: `CREATE TABLE release_stamps (
      app TEXT NOT NULL,
      root TEXT NOT NULL,
      stamps BLOB NOT NULL,
      recorded_at TEXT NOT NULL,
      PRIMARY KEY (app, root)
    ) STRICT`,
  },
  {
    version: 4,
    name: 'release-identity',
    // A release is its tree plus its signed version, runtime and config (docs/updates.md "What
    // counts as a change"): two installed releases (current and previous) may share a tree, so
    // rows are keyed by the release's id, not its root; a hold names the release's id. Rows of
    // older agents keep a placeholder id (their root), unique as the old key was.
    sql: `CREATE TABLE app_release_v4 (
      app TEXT NOT NULL,
      release_id TEXT NOT NULL,
      root TEXT NOT NULL,
      release TEXT NOT NULL,
      role TEXT NOT NULL CHECK (role IN ('current', 'previous')),
      since TEXT NOT NULL,
      PRIMARY KEY (app, release_id)
    ) STRICT;
    INSERT INTO app_release_v4 (app, release_id, root, release, role, since)
      SELECT app, 'root:' || root, root, release, role, since FROM app_release;
    DROP TABLE app_release;
    ALTER TABLE app_release_v4 RENAME TO app_release;
    ALTER TABLE app_hold ADD COLUMN rejected_id TEXT`,
  },
];
