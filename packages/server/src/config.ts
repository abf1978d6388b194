/**
 * The server's configuration: one schema with defaults and units in the names; sources merged
 * YAML file < `FLOTILLA_*` environment < flags, validated once, frozen (docs/operations.md "Configuration").
 */
import { isAbsolute, join, resolve } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { ConfigCollector } from '@flotilla/node-kit';
import type { Static } from '@flotilla/protocol';
import { CONFIG_FIELDS, LOG_LEVELS, SERVER_CONFIG, envNameOf } from './config/fields.js';
import { checkAgainstSchema } from './config/schema-check.js';

export { LOG_LEVELS };

/** Every key, declared once with its flag and doc in ./config/fields.ts (SERVER_CONFIG). */
export const ServerConfigSchema = SERVER_CONFIG.schema;
export type ServerConfig = Readonly<Static<typeof ServerConfigSchema>>;

/**
 * Flag values by the property commander stores them under (`sessionTtl` for `--session-ttl`, see
 * SERVER_CONFIG.cliOptions), `config` (path of a YAML configuration file) and `listen`
 * (`host:port`, `[v6]:port` or `:port`: sets listenHost and listenPort).
 */
export type ServerFlags = Readonly<Record<string, unknown>> & {
  config?: string;
  listen?: string;
  dataDir?: string;
  /** `sqlite:PATH` or `postgres://…`. */
  database?: string;
  logLevel?: string;
  logFormat?: string;
};

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
  for (const option of SERVER_CONFIG.cliOptions) {
    const value = flags[option.property];
    if (value !== undefined) set(option.key, value, option.flags.split(' ')[0] ?? option.key);
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
