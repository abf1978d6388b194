/** Opens the control plane's database (SQLite or PostgreSQL) and brings its schema up to date. */
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { FlotillaError } from '@flotilla/protocol';
import { redactDatabaseUrl } from '../config.js';
import type { Dialect } from './dialect.js';
import { migrateToLatest } from './migrate.js';
import { SqliteDialectKeepingCause } from './sqlite-dialect.js';
import { withStatementCache } from './statement-cache.js';
import { DATA_DIR_MODE, DATA_FILE_MODE } from '../data-dir.js';
import type { Database } from './schema.js';

export interface OpenDatabase {
  db: Kysely<Database>;
  dialect: Dialect;
  close(): Promise<void>;
}

const PG_INT8_OID = 20;
const SQLITE_BUSY_TIMEOUT_MS = 5000;

/** Opens `sqlite:PATH` or `postgres://…`, checks it answers, and runs pending migrations. */
export async function openDatabase(url: string, log: Logger): Promise<OpenDatabase> {
  const opened = url.startsWith('sqlite:') ? openSqlite(url.slice('sqlite:'.length)) : openPostgres(url, log);
  try {
    await sql`select 1`.execute(opened.db);
  } catch (e) {
    await opened.close().catch(() => undefined);
    throw new FlotillaError(
      'FLT_UNAVAILABLE',
      `cannot reach the database ${redactDatabaseUrl(url)}: ${messageOf(e)}`,
      {
        cause: e,
      },
    );
  }
  try {
    await migrateToLatest(opened.db, opened.dialect, log);
  } catch (e) {
    await opened.close().catch(() => undefined);
    throw e;
  }
  log.info({ dialect: opened.dialect, database: redactDatabaseUrl(url) }, 'database ready');
  return opened;
}

function openSqlite(path: string): OpenDatabase {
  let native: SqliteDatabase.Database;
  try {
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: DATA_DIR_MODE });
      // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database
      // file's mode, whatever the umask (docs/security.md "Files at rest").
      closeSync(openSync(path, 'a', DATA_FILE_MODE));
      for (const file of [path, `${path}-wal`, `${path}-shm`]) tighten(file);
    }
    native = new SqliteDatabase(path);
    native.pragma('journal_mode = WAL');
    // In WAL mode NORMAL fsyncs at checkpoints, not at every commit: a crash of the process loses
    // nothing, a power cut can lose the last commits but never corrupts the database (SQLite docs,
    // "WAL mode"). The control plane's writes (enrollments, audit) are retried by their clients.
    native.pragma('synchronous = NORMAL');
    native.pragma('foreign_keys = ON');
    native.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  } catch (e) {
    throw new FlotillaError('FLT_UNAVAILABLE', `cannot open SQLite database ${path}: ${messageOf(e)}`, {
      cause: e,
    });
  }
  const db = new Kysely<Database>({
    dialect: new SqliteDialectKeepingCause({ database: withStatementCache(native) }, native),
  });
  return { db, dialect: 'sqlite', close: () => db.destroy() };
}

function openPostgres(url: string, log: Logger): OpenDatabase {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    // bigserial/int8 ids (audit_log.id) come back as JS numbers, as on SQLite.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === PG_INT8_OID
          ? (v: string) => Number.parseInt(v, 10)
          : (pg.types.getTypeParser(oid, format) as (v: string) => unknown)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', (e) => log.warn({ err: e }, 'idle PostgreSQL connection failed'));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, dialect: 'postgres', close: () => db.destroy() };
}

/** Takes group and other bits off a database file (it may live outside the data directory). */
function tighten(file: string): void {
  const info = lstatSync(file, { throwIfNoEntry: false });
  if (info?.isFile() === true && (info.mode & 0o077) !== 0) chmodSync(file, info.mode & 0o700);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
