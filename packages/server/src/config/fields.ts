/**
 * Every key of the server's configuration, declared once (node-kit `defineConfig`): schema and
 * default, how text is read, doc, unit, environment variable (`FLOTILLA_` + the name in upper snake
 * case) and CLI flag. The schema (`ServerConfigSchema`), the coercion table and the `flotilla
 * server` options are generated from it; docs/operations.md's table is checked against it.
 * `--listen host:port` / `FLOTILLA_LISTEN` set `listenHost` and `listenPort` at once (config.ts).
 */
import { Type } from '@flotilla/protocol';
import { defineConfig, envNameOf } from '@flotilla/node-kit';
import type { ConfigFieldKind, ConfigKeySpec } from '@flotilla/node-kit';
import type { TSchema } from '@flotilla/protocol';
import { DEFAULT_DELTA_LEVEL, DEFAULT_MAX_DELTA_FILE_BYTES } from '@flotilla/store';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const ARG_OF: Record<ConfigFieldKind, string> = {
  string: '<value>',
  nullableString: '<value>',
  integer: '<n>',
  duration: '<duration>',
  boolean: '<bool>',
  list: '<a,b>',
};

/**
 * A key with a flag named after it (`sessionTtlMs` → `--session-ttl <duration>`); `arg` names the
 * flag's argument when `<n>`, `<duration>`, … says too little.
 */
function key<S extends TSchema>(
  schema: S,
  kind: ConfigFieldKind,
  doc: string,
  name: string,
  opts: { unit?: string; arg?: string } = {},
): Omit<ConfigKeySpec, 'schema'> & { schema: S } {
  const arg = opts.arg ?? (opts.unit === 'bytes' ? '<bytes>' : ARG_OF[kind]);
  const unit = opts.unit ?? (kind === 'duration' ? 'ms' : undefined);
  return { schema, kind, doc, ...(unit !== undefined && { unit }), flag: { name, arg } };
}

const int = (options: { minimum: number; maximum?: number; default: number }) => Type.Integer(options);
const nullableString = (options: { minLength?: number; pattern?: string }) =>
  Type.Union([Type.String(options), Type.Null()], { default: null });

export const SERVER_CONFIG = defineConfig({
  listenHost: {
    schema: Type.String({ minLength: 1, default: '127.0.0.1' }),
    kind: 'string',
    doc: 'address to listen on (flag: --listen host:port)',
  },
  listenPort: {
    schema: int({ minimum: 0, maximum: 65535, default: 7070 }),
    kind: 'integer',
    doc: 'port, 0: any free port (flag: --listen host:port)',
  },
  dataDir: key(
    Type.String({ minLength: 1, default: './.flotilla/server' }),
    'string',
    'server state: the database and stored content',
    'data-dir',
    { arg: '<dir>' },
  ),
  /** No schema default: `sqlite:<dataDir>/flotilla.db` (config.ts). */
  database: key(
    Type.String({ pattern: '^(sqlite:.+|postgres(ql)?://.+)$' }),
    'string',
    'sqlite:PATH or postgres://user:pass@host:5432/db (default: sqlite:<dataDir>/flotilla.db)',
    'database',
    { arg: '<url>' },
  ),
  logLevel: key(
    Type.Union(
      LOG_LEVELS.map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    'string',
    LOG_LEVELS.join(', '),
    'log-level',
    { arg: '<level>' },
  ),
  logFormat: key(
    Type.Union([Type.Literal('pretty'), Type.Literal('json')], { default: 'json' }),
    'string',
    'json lines on stdout, or pretty on stderr (the CLI: pretty on a terminal unless set)',
    'log-format',
    { arg: '<format>' },
  ),
  bodyLimitBytes: key(
    int({ minimum: 1024, maximum: 1024 ** 3, default: 1024 * 1024 }),
    'integer',
    'largest request body (413 above)',
    'body-limit-bytes',
    { unit: 'bytes' },
  ),
  maxHeaderBytes: key(
    int({ minimum: 1024, maximum: 1024 * 1024, default: 16 * 1024 }),
    'integer',
    'largest request head (431 above)',
    'max-header-bytes',
    { unit: 'bytes' },
  ),
  adminUsername: key(
    Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.@-]+$', default: 'admin' }),
    'string',
    'name of the first admin',
    'admin-username',
    { arg: '<name>' },
  ),
  /** Used once, to create the first admin. Never logged. */
  adminPassword: {
    schema: Type.Union([Type.String({ minLength: 8, maxLength: 1024 }), Type.Null()], { default: null }),
    kind: 'string',
    doc: 'password of the first admin (min. 8 chars; default: generated)',
    envOnly: true,
  },
  sessionTtlMs: key(
    int({ minimum: 60_000, default: 12 * 3_600_000 }),
    'duration',
    'web session lifetime',
    'session-ttl',
  ),
  deviceTokenTtlMs: key(
    int({ minimum: 10_000, default: 15 * 60_000 }),
    'duration',
    'device access token lifetime',
    'device-token-ttl',
  ),
  nonceTtlMs: key(
    int({ minimum: 1_000, default: 5 * 60_000 }),
    'duration',
    'enrollment / token challenge lifetime',
    'nonce-ttl',
  ),
  devicePollIntervalMs: key(
    int({ minimum: 1_000, default: 30_000 }),
    'duration',
    'how often agents poll without a WebSocket',
    'device-poll-interval',
  ),
  heartbeatIntervalMs: key(
    int({ minimum: 1_000, default: 25_000 }),
    'duration',
    'WebSocket ping interval',
    'heartbeat-interval',
  ),
  offlineAfterMs: key(
    int({ minimum: 1_000, default: 90_000 }),
    'duration',
    'silence after which a device shows offline',
    'offline-after',
  ),
  deployBatchSize: key(
    int({ minimum: 1, maximum: 5_000, default: 2_000 }),
    'integer',
    'devices a deployment assigns per transaction; larger deployments go on in the background',
    'deploy-batch-size',
  ),
  publicUrl: key(
    nullableString({ pattern: '^https?://[^\\s]+$' }),
    'string',
    'URL clients reach the server at, for links; https://… also marks the session cookie Secure',
    'public-url',
    { arg: '<url>' },
  ),
  trustProxy: key(
    Type.Boolean({ default: false }),
    'boolean',
    'honour X-Forwarded-For (only behind your own reverse proxy)',
    'trust-proxy',
  ),
  objectGcGraceMs: key(
    int({ minimum: 0, default: 24 * 3_600_000 }),
    'duration',
    'objects no release references are deleted only once older than this (a push uploads first)',
    'object-gc-grace',
  ),
  objectGcIntervalMs: key(
    int({ minimum: 1_000, default: 3_600_000 }),
    'duration',
    'how often the object garbage collector runs',
    'object-gc-interval',
  ),
  maxUploadBytes: key(
    int({ minimum: 1024, default: 4 * 1024 ** 3 }),
    'integer',
    'most uncompressed bytes one pack upload may carry',
    'max-upload-bytes',
    { unit: 'bytes' },
  ),
  deltaLevel: key(
    int({ minimum: 1, maximum: 19, default: DEFAULT_DELTA_LEVEL }),
    'integer',
    'zstd level of file deltas: 12 is ~2.5x faster than 19 for ~1.5x the bytes',
    'delta-level',
  ),
  maxDeltaFileBytes: key(
    int({ minimum: 0, maximum: 512 * 1024 ** 2, default: DEFAULT_MAX_DELTA_FILE_BYTES }),
    'integer',
    'largest base or target file a delta is made for; 0 turns deltas off (devices fetch chunks)',
    'max-delta-file-bytes',
    { unit: 'bytes' },
  ),
  deltaCacheMaxBytes: key(
    int({ minimum: 0, default: 2 * 1024 ** 3 }),
    'integer',
    'most bytes the delta cache (<dataDir>/deltas) holds on disk, least recently used deleted first; 0: none on disk',
    'delta-cache-max-bytes',
    { unit: 'bytes' },
  ),
  deltaCacheMinSavingPercent: key(
    int({ minimum: 0, maximum: 100, default: 10 }),
    'integer',
    'a delta is cached on disk only when at least this many percent smaller than the chunks it replaces',
    'delta-cache-min-saving-percent',
  ),
  allowServerSideSigning: key(
    Type.Boolean({ default: false }),
    'boolean',
    'single-machine mode: the server holds the offline keys and signs releases (docs/security.md)',
    'allow-server-side-signing',
  ),
  maxConnections: key(
    int({ minimum: 0, default: 10_000 }),
    'integer',
    'open connections (HTTP + WebSocket) in total; more are closed at once (0: no cap)',
    'max-connections',
  ),
  maxConnectionsPerAddress: key(
    int({ minimum: 0, default: 1_000 }),
    'integer',
    'open connections per client address (IPv6: per /64); behind a proxy raise it or 0 (no cap)',
    'max-connections-per-address',
  ),
  headersTimeoutMs: key(
    int({ minimum: 1_000, default: 30_000 }),
    'duration',
    'time a client has to send the request headers (then 408 FLT_REQUEST_TIMEOUT, closed)',
    'headers-timeout',
  ),
  keepAliveTimeoutMs: key(
    int({ minimum: 1_000, default: 72_000 }),
    'duration',
    'an idle keep-alive connection is closed after this',
    'keep-alive-timeout',
  ),
  clientStallTimeoutMs: key(
    int({ minimum: 1_000, default: 30_000 }),
    'duration',
    'window of the stall watchdog on request bodies',
    'client-stall-timeout',
  ),
  minClientBytesPerSecond: key(
    int({ minimum: 0, default: 256 }),
    'integer',
    'least rate a client must move bytes at, averaged over each window, while the server waits on it',
    'min-client-bytes-per-second',
    { unit: 'bytes/s', arg: '<bytes>' },
  ),
  loginFailuresBeforeBackoff: key(
    int({ minimum: 1, default: 5 }),
    'integer',
    'failed logins per (user name, address) before each further try waits 1 s, 2 s, 4 s …',
    'login-failures-before-backoff',
  ),
  loginMaxBackoffMs: key(
    int({ minimum: 1_000, default: 15 * 60_000 }),
    'duration',
    'longest such wait',
    'login-max-backoff',
  ),
  loginFailuresPerAddress: key(
    int({ minimum: 0, default: 100 }),
    'integer',
    'failed logins per address (any user names) per loginWindowMs (0: no cap)',
    'login-failures-per-address',
  ),
  loginWindowMs: key(
    int({ minimum: 1_000, default: 15 * 60_000 }),
    'duration',
    'window failed logins are counted in',
    'login-window',
  ),
  enrollNoncesPerAddress: key(
    int({ minimum: 0, default: 1_000 }),
    'integer',
    'enrollment nonces per address per nonceTtlMs (0: no cap)',
    'enroll-nonces-per-address',
  ),
  tokenChallengesPerAddressPerMinute: key(
    int({ minimum: 0, default: 1_000 }),
    'integer',
    'device token challenges per address per minute (0: no cap)',
    'token-challenges-per-address-per-minute',
  ),
  maxLiveChallengesPerDevice: key(
    int({ minimum: 1, maximum: 1_000, default: 16 }),
    'integer',
    'live token challenges kept per device (the oldest is replaced)',
    'max-live-challenges-per-device',
  ),
  inventoryWritesPerDevicePerHour: key(
    int({ minimum: 0, default: 120 }),
    'integer',
    'inventory reports per device per hour, HTTP and WebSocket (0: no cap)',
    'inventory-writes-per-device-per-hour',
  ),
  reportsPerDevicePerMinute: key(
    int({ minimum: 0, default: 120 }),
    'integer',
    'update reports per device per minute (0: no cap)',
    'reports-per-device-per-minute',
  ),
  minFreeDiskBytes: key(
    int({ minimum: 0, default: 16 * 1024 * 1024 }),
    'integer',
    '/readyz answers 503 while the data directory has less free space (bytes available to this user)',
    'min-free-disk-bytes',
    { unit: 'bytes' },
  ),
  agentDownloadsDir: key(
    nullableString({ minLength: 1 }),
    'string',
    'where GET /install.sh and /downloads/agent/<file> read from (default <dataDir>/agent-downloads)',
    'agent-downloads-dir',
    { arg: '<dir>' },
  ),
  eventLogMaxEvents: key(
    int({ minimum: 100, default: 100_000 }),
    'integer',
    'event log retention: the newest events kept (older ones are pruned in batches)',
    'event-log-max-events',
  ),
  eventLogMaxAgeMs: key(
    int({ minimum: 60_000, default: 7 * 24 * 3_600_000 }),
    'duration',
    'event log retention: events older than this are pruned',
    'event-log-max-age',
  ),
  eventStreamBufferBytes: key(
    int({ minimum: 4_096, default: 1024 * 1024 }),
    'integer',
    'bytes an event stream subscriber may leave unread before it is disconnected',
    'event-stream-buffer-bytes',
    { unit: 'bytes' },
  ),
  eventStreamHeartbeatMs: key(
    int({ minimum: 1_000, default: 15_000 }),
    'duration',
    'interval of the comment lines that keep idle event streams open',
    'event-stream-heartbeat',
  ),
  redisUrl: key(
    nullableString({ pattern: '^rediss?://[^\\s]+$' }),
    'string',
    'Redis that server processes share new-event notifications through (none: this process only)',
    'redis-url',
    { arg: '<url>' },
  ),
});

/** The keys' kinds, for ConfigCollector. */
export const CONFIG_FIELDS = SERVER_CONFIG.fields;

export { envNameOf };
