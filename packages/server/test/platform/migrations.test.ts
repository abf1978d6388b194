import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, it } from 'node:test';
import { sql } from 'kysely';
import pino from 'pino';
import { FlotillaError } from '@flotilla/protocol';
import { appliedMigrations, isSchemaCurrent, migrateToLatest } from '../../src/db/migrate.js';
import { MIGRATIONS } from '../../src/db/migrations/index.js';
import { openDatabase } from '../../src/db/open.js';
import { forEachDialect } from '../helpers/app.js';
import { createTempPostgres } from '../helpers/postgres.js';
import type { TempPostgres } from '../helpers/postgres.js';

const log = pino({ level: 'silent' });

forEachDialect((dialect) => {
  let dir: string;
  let pg: TempPostgres | null;
  let url: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flt-migrate-'));
    pg = dialect === 'postgres' ? await createTempPostgres() : null;
    url = pg ? pg.url : `sqlite:${join(dir, 'nested', 'flotilla.db')}`;
  });
  afterEach(async () => {
    await pg?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('a fresh database gets every migration and every table', async () => {
    const opened = await openDatabase(url, log);
    try {
      assert.equal(opened.dialect, dialect);
      assert.deepEqual(await appliedMigrations(opened.db), Object.keys(MIGRATIONS));
      assert.equal(await isSchemaCurrent(opened.db), true);
      const tables = (await opened.db.introspection.getTables()).map((t) => t.name).sort();
      for (const table of [
        'api_tokens',
        'audit_log',
        'device_facts',
        'device_nonces',
        'device_tags',
        'device_tokens',
        'devices',
        'registration_keys',
        'sessions',
        'users',
      ]) {
        assert.ok(tables.includes(table), `missing table ${table}`);
      }
      // bigserial ids come back as numbers on PostgreSQL too
      await opened.db
        .insertInto('audit_log')
        .values({
          at: 'x',
          actor_type: 'system',
          actor_id: 'a',
          action: 'b',
          subject_type: 'c',
          subject_id: 'd',
          source_ip: null,
          details: null,
        })
        .execute();
      const row = await opened.db.selectFrom('audit_log').select('id').executeTakeFirstOrThrow();
      assert.equal(typeof row.id, 'number');
    } finally {
      await opened.close();
    }
  });

  void it('restarting is idempotent and keeps the data', async () => {
    const first = await openDatabase(url, log);
    await first.db
      .insertInto('users')
      .values({
        id: 'u1',
        username: 'kept',
        password_hash: 'x',
        role: 'viewer',
        disabled: 0,
        created_at: 'now',
      })
      .execute();
    await first.close();
    const second = await openDatabase(url, log);
    try {
      assert.deepEqual(await migrateToLatest(second.db, dialect, log), []);
      assert.equal(
        (await second.db.selectFrom('users').select('username').executeTakeFirstOrThrow()).username,
        'kept',
      );
    } finally {
      await second.close();
    }
  });

  void it('refuses to start on a database migrated by a newer version', async () => {
    const opened = await openDatabase(url, log);
    await sql`insert into kysely_migration (name, timestamp) values (${'999_from_the_future'}, ${new Date().toISOString()})`.execute(
      opened.db,
    );
    await opened.close();
    await assert.rejects(openDatabase(url, log), (e: unknown) => {
      assert.ok(e instanceof FlotillaError);
      assert.equal(e.code, 'FLT_DB_SCHEMA_TOO_NEW');
      assert.match(e.message, /999_from_the_future/);
      return true;
    });
  });

  void it('a failing migration is reported with its name and applies nothing of itself', async () => {
    const opened = await openDatabase(url, log);
    try {
      const broken = {
        ...MIGRATIONS,
        '002_broken': {
          async up(db: Parameters<(typeof MIGRATIONS)[string]['up']>[0]) {
            await db.schema.createTable('half_done').addColumn('id', 'text').execute();
            await sql`this is not sql`.execute(db);
          },
        },
      };
      await assert.rejects(migrateToLatest(opened.db, dialect, log, broken), (e: unknown) => {
        assert.ok(e instanceof FlotillaError);
        assert.equal(e.code, 'FLT_DB_MIGRATION_FAILED');
        assert.match(e.message, /002_broken/);
        return true;
      });
      assert.deepEqual(await appliedMigrations(opened.db), Object.keys(MIGRATIONS));
      assert.equal(await isSchemaCurrent(opened.db, broken), false);
      const tables = (await opened.db.introspection.getTables()).map((t) => t.name);
      assert.ok(!tables.includes('half_done'), 'the failed migration ran in a transaction that rolled back');
    } finally {
      await opened.close();
    }
  });
});

void it('an unreachable PostgreSQL is FLT_UNAVAILABLE with the password redacted', async () => {
  await assert.rejects(openDatabase('postgres://flotilla:s3cret@127.0.0.1:1/flotilla', log), (e: unknown) => {
    assert.ok(e instanceof FlotillaError);
    assert.equal(e.code, 'FLT_UNAVAILABLE');
    assert.ok(!e.message.includes('s3cret'));
    return true;
  });
});
