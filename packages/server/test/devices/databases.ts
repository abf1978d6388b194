/**
 * Fresh, migrated databases for the device tests that need no HTTP app: an in-memory SQLite, or a
 * PostgreSQL database of its own (dropped afterwards).
 */
import pino from 'pino';
import { openDatabase } from '../../src/db/open.js';
import type { OpenDatabase } from '../../src/db/open.js';
import type { TestDialect } from '../helpers/app.js';
import { createTempPostgres } from '../helpers/postgres.js';

export interface TestDatabase extends OpenDatabase {
  /** Closes the connection and drops the PostgreSQL database. */
  dispose(): Promise<void>;
}

export async function openTestDatabase(dialect: TestDialect): Promise<TestDatabase> {
  const log = pino({ level: 'silent' });
  if (dialect === 'sqlite') {
    const opened = await openDatabase('sqlite::memory:', log);
    return { ...opened, dispose: () => opened.close() };
  }
  const temp = await createTempPostgres();
  const opened = await openDatabase(temp.url, log);
  return {
    ...opened,
    dispose: async () => {
      await opened.close();
      await temp.drop();
    },
  };
}
