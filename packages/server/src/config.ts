/**
 * The server's configuration: one schema with defaults and units in the names; sources merged
 * YAML file < `FLOTILLA_*` environment < flags, validated once, frozen (docs/operations.md "Configuration").
 */
import { isAbsolute, join, resolve } from 'node:path';
import { FlotillaError, Type } from '@flotilla/protocol';
import { ConfigCollector } from '@flotilla/node-kit';
import type { Static } from '@flotilla/protocol';
import { DEFAULT_DELTA_LEVEL, DEFAULT_MAX_DELTA_FILE_BYTES } from '@flotilla/store';
import { CONFIG_FIELDS, envNameOf } from './config/fields.js';
import { checkAgainstSchema } from './config/schema-check.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const ServerConfigSchema = Type.Object(
  {
    listenHost: Type.String({ minLength: 1, default: '127.0.0.1' }),
    listenPort: Type.Integer({ minimum: 0, maximum: 65535, default: 7070 }),
    dataDir: Type.String({ minLength: 1, default: './.flotilla/server' }),
    /** `sqlite:PATH` or `postgres://…`; default `sqlite:<dataDir>/flotilla.db`. */
    database: Type.String({ pattern: '^(sqlite:.+|postgres(ql)?://.+)$' }),
    logLevel: Type.Union(
      LOG_LEVELS.map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    logFormat: Type.Union([Type.Literal('pretty'), Type.Literal('json')], { default: 'json' }),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 1024 ** 3, default: 1024 * 1024 }),
    maxHeaderBytes: Type.Integer({ minimum: 1024, maximum: 1024 * 1024, default: 16 * 1024 }),
    adminUsername: Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: '^[A-Za-z0-9_.@-]+$',
      default: 'admin',
    }),
    /** Only from `FLOTILLA_ADMIN_PASSWORD`; used once, to create the first admin. Never logged. */
    adminPassword: Type.Union([Type.String({ minLength: 8, maxLength: 1024 }), Type.Null()], {
      default: null,
    }),
    sessionTtlMs: Type.Integer({ minimum: 60_000, default: 12 * 3_600_000 }),
    deviceTokenTtlMs: Type.Integer({ minimum: 10_000, default: 15 * 60_000 }),
    nonceTtlMs: Type.Integer({ minimum: 1_000, default: 5 * 60_000 }),
    devicePollIntervalMs: Type.Integer({ minimum: 1_000, default: 30_000 }),
    heartbeatIntervalMs: Type.Integer({ minimum: 1_000, default: 25_000 }),
    offlineAfterMs: Type.Integer({ minimum: 1_000, default: 90_000 }),
    /** The URL operators and devices reach this server at, for links; null when unset. */
    publicUrl: Type.Union([Type.String({ pattern: '^https?://[^\\s]+$' }), Type.Null()], { default: null }),
    /** Trust `X-Forwarded-For` (set when behind a reverse proxy). */
    trustProxy: Type.Boolean({ default: false }),
    /** Objects no release references are deleted only once older than this (a push uploads first). */
    objectGcGraceMs: Type.Integer({ minimum: 0, default: 24 * 3_600_000 }),
    /** How often the object garbage collector runs. */
    objectGcIntervalMs: Type.Integer({ minimum: 1_000, default: 3_600_000 }),
    /** Most uncompressed bytes one pack upload may carry. */
    maxUploadBytes: Type.Integer({ minimum: 1024, default: 4 * 1024 ** 3 }),
    /** zstd level of file deltas (`zstd --patch-from`): 12 is ~2.5x faster than 19 for ~1.5x the bytes. */
    deltaLevel: Type.Integer({ minimum: 1, maximum: 19, default: DEFAULT_DELTA_LEVEL }),
    /** Largest base or target file a delta is made for; 0 turns deltas off (devices fetch chunks). */
    maxDeltaFileBytes: Type.Integer({
      minimum: 0,
      maximum: 512 * 1024 ** 2,
      default: DEFAULT_MAX_DELTA_FILE_BYTES,
    }),
    /** Most open connections (HTTP and WebSocket) in total; further ones are closed at once. 0: no cap. */
    maxConnections: Type.Integer({ minimum: 0, default: 10_000 }),
    /**
     * Most open connections from one client address (IPv6: one /64). Behind a reverse proxy every
     * connection comes from the proxy: raise this or set 0 (no cap). 0: no cap.
     */
    maxConnectionsPerAddress: Type.Integer({ minimum: 0, default: 1_000 }),
    /** A client must finish sending the request headers within this long. */
    headersTimeoutMs: Type.Integer({ minimum: 1_000, default: 30_000 }),
    /** An idle keep-alive connection (between requests) is closed after this long. */
    keepAliveTimeoutMs: Type.Integer({ minimum: 1_000, default: 72_000 }),
    /**
     * While the server waits on a client for request body bytes, the client must send at least
     * `minClientBytesPerSecond` averaged over each window of this length, or the connection is
     * closed. A slow but steady upload is never cut.
     */
    clientStallTimeoutMs: Type.Integer({ minimum: 1_000, default: 30_000 }),
    minClientBytesPerSecond: Type.Integer({ minimum: 0, default: 256 }),
    /** Failed logins for one user name from one address before each further try waits (doubling). */
    loginFailuresBeforeBackoff: Type.Integer({ minimum: 1, default: 5 }),
    /** The longest wait one (user name, address) pair can be made to sit out after failures. */
    loginMaxBackoffMs: Type.Integer({ minimum: 1_000, default: 15 * 60_000 }),
    /** Failed logins from one address (any user names) per `loginWindowMs`; then 429. 0: no cap. */
    loginFailuresPerAddress: Type.Integer({ minimum: 0, default: 100 }),
    /** The window failed logins are counted in (and forgotten after). */
    loginWindowMs: Type.Integer({ minimum: 1_000, default: 15 * 60_000 }),
    /** Enrollment nonces one address may get per `nonceTtlMs` (before the server-wide budget). 0: no cap. */
    enrollNoncesPerAddress: Type.Integer({ minimum: 0, default: 1_000 }),
    /** Token challenges one address may ask for per minute. 0: no cap. */
    tokenChallengesPerAddressPerMinute: Type.Integer({ minimum: 0, default: 1_000 }),
    /** Live (unused, unexpired) token challenges kept per device; a new one replaces the oldest. */
    maxLiveChallengesPerDevice: Type.Integer({ minimum: 1, maximum: 1_000, default: 16 }),
    /** Inventory writes (HTTP and WebSocket) one device may make per hour. 0: no cap. */
    inventoryWritesPerDevicePerHour: Type.Integer({ minimum: 0, default: 120 }),
    /** Update reports one device may send per minute. 0: no cap. */
    reportsPerDevicePerMinute: Type.Integer({ minimum: 0, default: 120 }),
    /**
     * Most bytes the delta cache (`<dataDir>/deltas`) holds on disk; past it, the entries used least
     * recently are deleted. 0 keeps no delta on disk (recent ones stay in memory).
     */
    deltaCacheMaxBytes: Type.Integer({ minimum: 0, default: 2 * 1024 ** 3 }),
    /**
     * A delta is cached on disk only when it is at least this many percent smaller than the chunks
     * it replaces (it is still served); deltas of unrelated or random data save next to nothing.
     */
    deltaCacheMinSavingPercent: Type.Integer({ minimum: 0, maximum: 100, default: 10 }),
    /**
     * Single-machine convenience mode: this server holds the offline root and targets keys too and
     * signs releases itself (docs/security.md explains what that gives up). Off by default.
     */
    allowServerSideSigning: Type.Boolean({ default: false }),
    /**
     * `/readyz` answers 503 while the data directory's file system has less free space than this
     * (bytes available to the server's user); 0 only when it is completely full.
     */
    minFreeDiskBytes: Type.Integer({ minimum: 0, default: 16 * 1024 * 1024 }),
    /**
     * Where `GET /install.sh` and `GET /downloads/agent/<file>` read from (what `flotilla agent
     * bundle --downloads DIR` writes); default `<dataDir>/agent-downloads`.
     */
    agentDownloadsDir: Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null }),
  },
  { additionalProperties: false },
);
export type ServerConfig = Readonly<Static<typeof ServerConfigSchema>>;

export interface ServerFlags {
  /** Path of a YAML configuration file. */
  config?: string;
  /** `host:port`, `[v6]:port` or `:port`. */
  listen?: string;
  dataDir?: string;
  /** `sqlite:PATH` or `postgres://…`. */
  database?: string;
  logLevel?: string;
  logFormat?: string;
}

export interface ResolveConfigInput {
  flags?: ServerFlags;
  /** Defaults to `process.env`; injectable for tests. */
  env?: Record<string, string | undefined>;
}

/**
 * Merges file < env < flags, validates once and returns a frozen config. Throws
 * FLT_CONFIG_INVALID listing every problem in `details.problems`.
 */
export function resolveServerConfig(input: ResolveConfigInput = {}): ServerConfig {
  const flags = input.flags ?? {};
  const env = input.env ?? process.env;
  const sources = new ConfigCollector(CONFIG_FIELDS);
  const { problems, merged, origins, set } = sources;

  const filePath = flags.config ?? nonEmpty(env.FLOTILLA_CONFIG);
  if (filePath !== undefined) sources.readFile(filePath);

  const envListen = nonEmpty(env.FLOTILLA_LISTEN);
  if (envListen !== undefined) applyListen(set, envListen, 'FLOTILLA_LISTEN', problems);
  for (const key of Object.keys(CONFIG_FIELDS)) {
    const name = envNameOf(key);
    const value = env[name];
    if (value !== undefined && value !== '') set(key, value, name);
  }

  if (flags.listen !== undefined) applyListen(set, flags.listen, '--listen', problems);
  const flagValues: [keyof ServerFlags, string][] = [
    ['dataDir', '--data-dir'],
    ['database', '--database'],
    ['logLevel', '--log-level'],
    ['logFormat', '--log-format'],
  ];
  for (const [key, label] of flagValues) {
    const value = flags[key];
    if (value !== undefined) set(key, value, label);
  }

  if (typeof merged.dataDir === 'string' || merged.dataDir === undefined) {
    merged.dataDir = resolve(typeof merged.dataDir === 'string' ? merged.dataDir : './.flotilla/server');
  }
  if (merged.database === undefined)
    merged.database = `sqlite:${join(String(merged.dataDir), 'flotilla.db')}`;
  else if (typeof merged.database === 'string') merged.database = absoluteSqlitePath(merged.database);

  const config = checkAgainstSchema(ServerConfigSchema, merged, problems, origins);
  if (problems.length > 0 || config === undefined) {
    throw new FlotillaError(
      'FLT_CONFIG_INVALID',
      `invalid server configuration:\n  - ${problems.join('\n  - ')}`,
      {
        details: { problems },
      },
    );
  }
  return Object.freeze(config);
}

type Setter = (key: string, value: unknown, label: string) => unknown;

function applyListen(set: Setter, text: string, label: string, problems: string[]) {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    problems.push(`${label}: expected host:port, [ipv6]:port or :port (got "${text}")`);
    return;
  }
  const host = m[1] ?? m[2];
  if (host) set('listenHost', host, label);
  set('listenPort', port, label);
}

function absoluteSqlitePath(database: string): string {
  if (!database.startsWith('sqlite:')) return database;
  const path = database.slice('sqlite:'.length);
  if (path === '' || path === ':memory:' || isAbsolute(path)) return database;
  return `sqlite:${resolve(path)}`;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** The database URL with any password replaced, for logs and error messages. */
export function redactDatabaseUrl(url: string): string {
  if (!/^postgres(ql)?:\/\//.test(url)) return url;
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'postgres://(unparseable)';
  }
}
