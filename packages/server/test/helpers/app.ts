/**
 * A fresh server app per test, on a real database: SQLite in a temp dir, or a fresh PostgreSQL
 * database on FLOTILLA_TEST_POSTGRES_URL. Every server test uses these.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import type { Role, User } from '@flotilla/protocol';
import { buildApp } from '../../src/app.js';
import type { BuildAppOptions } from '../../src/app.js';
import { createToken } from '../../src/auth/tokens.js';
import { resolveServerConfig } from '../../src/config.js';
import type { ServerConfig } from '../../src/config.js';
import type { Clock, ServerContext } from '../../src/context.js';
import type { EventBus } from '../../src/events/bus.js';
import type { EventLog } from '../../src/events/log.js';
import { insertUser } from '../../src/users/service.js';
import { createTempPostgres } from './postgres.js';

export type TestDialect = 'sqlite' | 'postgres';

/** The bootstrap admin's password in every test app. */
export const TEST_ADMIN_PASSWORD = 'test-admin-password';

export interface TestOperator {
  user: User;
  password: string;
  /** An API token secret (`flt_at_…`). */
  token: string;
}

export interface TestApp {
  app: FastifyInstance;
  ctx: ServerContext;
  /** The app's domain event bus (subscribe to observe what services emit). */
  events: EventBus;
  /** The persisted event log (`settle()` waits until what was emitted is written). */
  eventLog: EventLog;
  config: ServerConfig;
  dataDir: string;
  /** API token of the bootstrap admin. */
  adminToken: string;
  /** A new user of that role (unique name) and an API token for it. */
  tokenFor(role: Role): Promise<string>;
  operator(role: Role): Promise<TestOperator>;
  /** Closes the app and deletes its database and temp dir. */
  close(): Promise<void>;
}

export interface TestAppOptions {
  dialect: TestDialect;
  config?: Partial<ServerConfig>;
  clock?: Clock;
  /** Passed to buildApp: observe routes (`onRoute`) or register test-only routes. */
  beforeRoutes?: BuildAppOptions['beforeRoutes'];
  /** Passed to buildApp: extensions (e.g. one that captures the ExtensionHost). */
  extensions?: BuildAppOptions['extensions'];
}

export async function createTestApp(opts: TestAppOptions): Promise<TestApp> {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-server-test-'));
  const pgdb = opts.dialect === 'postgres' ? await createTempPostgres() : null;
  const cleanup = async () => {
    await pgdb?.drop();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const base = resolveServerConfig({
      env: {
        FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
        FLOTILLA_LOG_LEVEL: process.env.FLOTILLA_TEST_LOG_LEVEL ?? 'silent',
      },
      flags: { dataDir, listen: '127.0.0.1:0', ...(pgdb ? { database: pgdb.url } : {}) },
    });
    const config: ServerConfig = Object.freeze({ ...base, ...opts.config });
    const logger = pino({ level: config.logLevel });
    const built = await buildApp({
      config,
      logger,
      ...(opts.clock ? { clock: opts.clock } : {}),
      ...(opts.beforeRoutes ? { beforeRoutes: opts.beforeRoutes } : {}),
      ...(opts.extensions ? { extensions: opts.extensions } : {}),
    });
    const { app, ctx, events, eventLog } = built;
    await app.ready();
    const adminRow = await ctx.db
      .selectFrom('users')
      .select(['id', 'username', 'role'])
      .where('username', '=', config.adminUsername)
      .executeTakeFirstOrThrow();
    const adminPrincipal = {
      kind: 'user' as const,
      userId: adminRow.id,
      username: adminRow.username,
      role: adminRow.role,
      via: 'token' as const,
    };
    const adminToken = (await createToken(ctx, { name: 'test-admin' }, adminPrincipal, null)).secret;
    let counter = 0;
    const operator = async (role: Role): Promise<TestOperator> => {
      counter += 1;
      const password = `password-${role}-${counter}`;
      const user = await insertUser(ctx, { username: `${role}-${counter}`, password, role });
      const principal = {
        kind: 'user' as const,
        userId: user.id,
        username: user.username,
        role,
        via: 'token' as const,
      };
      const token = (await createToken(ctx, { name: `test-${role}` }, principal, null)).secret;
      return { user, password, token };
    };
    let closed: Promise<void> | undefined;
    return {
      app,
      ctx,
      events,
      eventLog,
      config,
      dataDir,
      adminToken,
      operator,
      tokenFor: async (role) => (await operator(role)).token,
      close: () => (closed ??= app.close().then(cleanup)),
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Dialects to run: both, unless FLOTILLA_TEST_DIALECTS names a subset (e.g. `sqlite`). */
export function testDialects(): TestDialect[] {
  const wanted = (process.env.FLOTILLA_TEST_DIALECTS ?? 'sqlite,postgres').split(',').map((s) => s.trim());
  return (['sqlite', 'postgres'] as const).filter((d) => wanted.includes(d));
}

/** Runs `fn` inside one `describe` block per database dialect. */
export function forEachDialect(fn: (dialect: TestDialect) => void): void {
  for (const dialect of testDialects()) {
    void describe(dialect, () => fn(dialect));
  }
}

/** Authorization header for an API token. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
