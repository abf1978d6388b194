import { Migrator, sql } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import type { Logger } from 'pino';
import { FlotillaError } from '@flotilla/protocol';
import type { Dialect } from './dialect.js';
import { MIGRATIONS } from './migrations/index.js';
import type { NumberedMigration } from './migrations/index.js';

const MIGRATION_TABLE = 'kysely_migration';

class StaticMigrationProvider implements MigrationProvider {
  constructor(
    private readonly migrations: Readonly<Record<string, NumberedMigration>>,
    private readonly dialect: Dialect,
  ) {}

  getMigrations(): Promise<Record<string, Migration>> {
    const out: Record<string, Migration> = {};
    for (const [name, m] of Object.entries(this.migrations)) {
      // Kysely runs PostgreSQL migrations in a transaction but not SQLite ones (its adapter does
      // not claim transactional DDL, though SQLite has it), so a failed SQLite migration would be
      // left half applied without this.
      out[name] =
        this.dialect === 'sqlite'
          ? { up: (db: Kysely<unknown>) => db.transaction().execute((trx) => m.up(trx, this.dialect)) }
          : { up: (db: Kysely<unknown>) => m.up(db, this.dialect) };
    }
    return Promise.resolve(out);
  }
}

/** Names of the migrations already applied to this database, oldest first. */
export async function appliedMigrations<DB>(db: Kysely<DB>): Promise<string[]> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true });
  if (!tables.some((t) => t.name === MIGRATION_TABLE)) return [];
  const rows = await sql<{
    name: string;
  }>`select name from ${sql.table(MIGRATION_TABLE)} order by name`.execute(db);
  return rows.rows.map((r) => r.name);
}

/**
 * Brings the schema up to date. Refuses (FLT_DB_SCHEMA_TOO_NEW) a database that a newer server
 * has migrated: this code does not know its tables and must not write to them.
 */
export async function migrateToLatest<DB>(
  db: Kysely<DB>,
  dialect: Dialect,
  log: Logger,
  migrations: Readonly<Record<string, NumberedMigration>> = MIGRATIONS,
): Promise<string[]> {
  const applied = await appliedMigrations(db);
  const unknown = applied.filter((name) => !(name in migrations));
  if (unknown.length > 0) {
    throw new FlotillaError(
      'FLT_DB_SCHEMA_TOO_NEW',
      `the database was migrated by a newer Flotilla (unknown migrations: ${unknown.join(', ')}); run that version or restore a backup`,
      { details: { unknownMigrations: unknown } },
    );
  }
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider(migrations, dialect) });
  const { error, results } = await migrator.migrateToLatest();
  const done = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  if (error !== undefined) {
    const failed = (results ?? []).find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new FlotillaError(
      'FLT_DB_MIGRATION_FAILED',
      `database migration ${failed} failed: ${messageOf(error)}`,
      {
        cause: error,
        details: { migration: failed },
      },
    );
  }
  for (const name of done) log.info({ migration: name }, 'applied database migration');
  return done;
}

/** True when every known migration is applied (readiness). */
export async function isSchemaCurrent<DB>(
  db: Kysely<DB>,
  migrations: Readonly<Record<string, NumberedMigration>> = MIGRATIONS,
): Promise<boolean> {
  const applied = new Set(await appliedMigrations(db));
  return Object.keys(migrations).every((name) => applied.has(name));
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
