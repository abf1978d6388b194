/**
 * What every service and route plugin of the server receives. Built once by `buildApp` from a
 * validated, frozen config; nothing here is an import-time singleton.
 */
import type { Insertable, Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AuditLogTable, Database, Db, EventOutboxTable } from './db/schema.js';
import type { Dialect } from './db/dialect.js';
import type { ServerConfig } from './config.js';
import type { RateLimits } from './http/rate-limits.js';

export interface Clock {
  now(): Date;
}

export type { Db } from './db/schema.js';

export interface AuditEntryInput {
  actorType: 'user' | 'device' | 'system';
  actorId: string;
  /** Dotted verb, e.g. `device.accept`, `regkey.create`, `user.login`. */
  action: string;
  subjectType: string;
  subjectId: string;
  sourceIp?: string | null;
  details?: Record<string, unknown> | null;
  /** When it happened (ISO 8601); default: when it is recorded. */
  at?: string;
}

export interface AuditRecorder {
  /** Records one mutation; pass the transaction that made the change so both commit together. */
  record(entry: AuditEntryInput, db?: Db): Promise<void>;
  /**
   * Records several entries with one insert per table (in order); pass a transaction so that both
   * tables' rows commit together.
   */
  recordMany(entries: readonly AuditEntryInput[], db?: Db): Promise<void>;
  /**
   * The rows `recordMany` inserts, for a caller that writes them within a statement of its own
   * (one round trip on PostgreSQL); it calls `written()` once that statement has run.
   */
  rows(entries: readonly AuditEntryInput[]): AuditRows;
  /** The rows of `rows` were written: the event log looks at its outbox. */
  written(): void;
}

/** An audit batch as rows of `audit_log` and of the event log's outbox, in order. */
export interface AuditRows {
  audit: Insertable<AuditLogTable>[];
  outbox: Insertable<EventOutboxTable>[];
}

export interface ServerContext {
  readonly config: ServerConfig;
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  readonly log: Logger;
  readonly clock: Clock;
  readonly audit: AuditRecorder;
  readonly metrics: Registry;
  /** Per-address, per-(user, address) and per-device request limits (this process's memory). */
  readonly limits: RateLimits;
}

/** Who made a request, set by the auth hooks before any handler runs. */
export type Principal =
  | {
      kind: 'user';
      userId: string;
      username: string;
      role: 'admin' | 'deployer' | 'viewer';
      via: 'session' | 'token';
    }
  | { kind: 'device'; deviceId: string; status: 'pending' | 'accepted' | 'rejected' | 'revoked' };
