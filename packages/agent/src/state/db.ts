/** Opens `<dataDir>/state.db` (better-sqlite3, WAL) and brings it to the current schema. */
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase } from 'better-sqlite3';
import { FlotillaError } from '@flotilla/protocol';
import { ioError } from './files.js';
import { MIGRATIONS } from './migrations.js';
import type { Migration } from './migrations.js';

export type StateDatabase = SqliteDatabase;

export function openStateDatabase(
  path: string,
  migrations: readonly Migration[] = MIGRATIONS,
): StateDatabase {
  let db: SqliteDatabase;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
  } catch (e) {
    throw ioError('open state database', path, e);
  }
  try {
    migrate(db, migrations, path);
  } catch (e) {
    db.close();
    throw e instanceof FlotillaError ? e : ioError('migrate state database', path, e);
  }
  return db;
}

function migrate(db: SqliteDatabase, migrations: readonly Migration[], path: string): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`);
  const row = db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as {
    version: number | null;
  };
  const current = row.version ?? 0;
  const latest = migrations.at(-1)?.version ?? 0;
  if (current > latest) {
    throw new FlotillaError(
      'FLT_IO',
      `state database ${path} has schema version ${current}, newer than this agent knows (${latest}); run a newer agent`,
      { details: { path, version: current, known: latest } },
    );
  }
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const migration of migrations) {
    if (migration.version <= current) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, new Date().toISOString());
    })();
  }
}
