/**
 * Kysely's SQLite dialect, except that a failed transaction keeps its own error. On SQLITE_FULL,
 * SQLITE_IOERR and a few others SQLite rolls the transaction back by itself; Kysely then issues
 * ROLLBACK, which fails with "cannot rollback - no transaction is active" and replaces the error
 * that explains the failure. Here ROLLBACK is sent only while a transaction is open.
 */
import type SqliteDatabase from 'better-sqlite3';
import { SqliteDialect, SqliteDriver } from 'kysely';
import type { DatabaseConnection, Driver, SqliteDialectConfig } from 'kysely';

class SqliteDriverKeepingCause extends SqliteDriver {
  constructor(
    config: SqliteDialectConfig,
    private readonly native: SqliteDatabase.Database,
  ) {
    super(config);
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (!this.native.inTransaction) return;
    await super.rollbackTransaction(connection);
  }
}

export class SqliteDialectKeepingCause extends SqliteDialect {
  constructor(
    private readonly dialectConfig: SqliteDialectConfig,
    private readonly native: SqliteDatabase.Database,
  ) {
    super(dialectConfig);
  }

  override createDriver(): Driver {
    return new SqliteDriverKeepingCause(this.dialectConfig, this.native);
  }
}
