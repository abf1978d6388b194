/**
 * The agent's configuration: one schema with defaults and units in the names; sources merged
 * YAML file < `FLOTILLA_*` environment < flags, validated once, frozen (docs/updates.md "Configuration (agent)").
 */
import { join, resolve } from 'node:path';
import { ConfigCollector, FlotillaError, LIMITS, NAME_PATTERN, Type } from '@flotilla/protocol';
import type { Static } from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';
import type { ValueError } from '@sinclair/typebox/value';
import { CONFIG_FIELDS, envNameOf, show } from './config/fields.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const nullable = <T extends ReturnType<typeof Type.String>>(schema: T) =>
  Type.Union([schema, Type.Null()], { default: null });

export const AgentConfigSchema = Type.Object(
  {
    /** Base URL of the Flotilla server (`https://host[:port][/prefix]`); null: use the one enrolled with. */
    serverUrl: nullable(Type.String({ minLength: 1 })),
    /** Absolute; default `./.flotilla/agent` resolved against the working directory. */
    dataDir: Type.String({ minLength: 1 }),
    /** File holding the registration key (trimmed); read only when the device must enroll. */
    registrationKeyFile: nullable(Type.String({ minLength: 1 })),
    /** Only from `FLOTILLA_REGISTRATION_KEY`. Never logged. */
    registrationKey: nullable(Type.String({ minLength: 8, maxLength: 256 })),
    /** Tags requested at enrollment (the registration key's tags are added by the server). */
    tags: Type.Array(Type.String({ pattern: NAME_PATTERN }), {
      maxItems: LIMITS.tagsPerDevice,
      uniqueItems: true,
      default: [],
    }),
    /** For the CLI, which builds the logger. */
    logFile: nullable(Type.String({ minLength: 1 })),
    logLevel: Type.Union(
      LOG_LEVELS.map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    logFormat: Type.Union([Type.Literal('pretty'), Type.Literal('json')], { default: 'json' }),
    /** Time between state polls; the server's `pollIntervalMs` in DeviceState overrides it. */
    pollIntervalMs: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 30_000 }),
    /** Never contact the server; run from local state only. */
    offline: Type.Boolean({ default: false }),
    /** Inventory scripts and JSON fact files; default `<dataDir>/inventory.d`. */
    inventoryDir: Type.String({ minLength: 1 }),
    /** Inventory is reported at least this often, changed or not. */
    inventoryIntervalMs: Type.Integer({ minimum: 1000, default: 3_600_000 }),
    /** How often facts are re-collected to detect a change. */
    inventoryCheckIntervalMs: Type.Integer({ minimum: 1000, default: 60_000 }),
    /** An inventory script running longer than this is killed and skipped. */
    inventoryScriptTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
    /** An inventory script printing more than this is killed and skipped. */
    inventoryScriptMaxOutputBytes: Type.Integer({
      minimum: 1024,
      maximum: 16 * 1024 * 1024,
      default: 256 * 1024,
    }),
    /** Timeout of one HTTP request to the server. */
    requestTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 15_000 }),
    /** Largest HTTP response body accepted from the server. */
    maxResponseBytes: Type.Integer({ minimum: 1024, maximum: 256 * 1024 * 1024, default: 4 * 1024 * 1024 }),
    /** WebSocket heartbeat until the server's `welcome` says otherwise. */
    heartbeatIntervalMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 25_000 }),
    /** Graceful stop period; after it, connections are cut and the state database closed. */
    stopTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
    /** Previous releases kept per app for instant rollback (docs/updates.md). */
    keepPreviousReleases: Type.Integer({ minimum: 0, maximum: 10, default: 1 }),
    /** Size cap of the chunk cache `<dataDir>/chunks` in bytes; current and previous releases are never evicted. */
    chunkCacheMaxBytes: Type.Integer({ minimum: 0, default: 1024 * 1024 * 1024 }),
    /** Parallel object downloads. */
    fetchConcurrency: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
    /** Download bandwidth limit in bytes per second; 0 = unlimited. */
    fetchBytesPerSecond: Type.Integer({ minimum: 0, default: 0 }),
    /** Ask for changed files as deltas against the installed release (docs/updates.md "Deltas"). */
    fetchDeltas: Type.Boolean({ default: true }),
    /**
     * Staging takes unchanged files from the installed releases, verified, by hardlink (`link`),
     * by copy (`copy`, reflink where the filesystem can) or not at all (`off`): docs/updates.md.
     */
    stageReuse: Type.Union([Type.Literal('link'), Type.Literal('copy'), Type.Literal('off')], {
      default: 'link',
    }),
    /**
     * How staging verifies an installed file before linking it: `stamp` trusts one unchanged
     * (inode, size, mode, modification time) since the last staging verified it; `content` reads
     * every one: docs/updates.md "Staging".
     */
    stageVerify: Type.Union([Type.Literal('stamp'), Type.Literal('content')], { default: 'stamp' }),
    /**
     * Worker threads that rebuild files from deltas while the main thread stages the release (at
     * most the CPUs less one); 0 rebuilds them on the main thread: docs/updates.md "Deltas".
     */
    deltaThreads: Type.Integer({ minimum: 0, maximum: 8, default: 1 }),
    /** The image repository's trusted root (TUF root.json); null: trust the server's on first use. */
    trustedRootFile: nullable(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);
export type AgentConfig = Readonly<Static<typeof AgentConfigSchema>>;

/** reagent-style flags; the CLI maps argv to these. */
export interface AgentFlags {
  /** Path of a YAML configuration file. */
  config?: string;
  server?: string;
  dataDir?: string;
  registrationKeyFile?: string;
  tags?: string[];
  logFile?: string;
  logLevel?: string;
  logFormat?: 'pretty' | 'json';
  /** A duration such as `30s`. */
  pollInterval?: string;
  offline?: boolean;
  inventoryDir?: string;
  /** A duration such as `1h`. */
  inventoryInterval?: string;
  /** The image repository's root.json to trust (see docs/updates.md). */
  trustedRoot?: string;
  keepPreviousReleases?: number;
  chunkCacheMaxBytes?: number;
  fetchConcurrency?: number;
  fetchBytesPerSecond?: number;
  fetchDeltas?: boolean;
  stageReuse?: 'link' | 'copy' | 'off';
  stageVerify?: 'stamp' | 'content';
}

export interface ResolveAgentConfigInput {
  flags?: AgentFlags;
  /** Defaults to `process.env`; injectable for tests. */
  env?: Record<string, string | undefined>;
}

const FLAG_FIELDS: readonly (readonly [keyof AgentFlags, string, string])[] = [
  ['server', 'serverUrl', '--server'],
  ['dataDir', 'dataDir', '--data-dir'],
  ['registrationKeyFile', 'registrationKeyFile', '--registration-key-file'],
  ['tags', 'tags', '--tags'],
  ['logFile', 'logFile', '--log-file'],
  ['logLevel', 'logLevel', '--log-level'],
  ['logFormat', 'logFormat', '--log-format'],
  ['pollInterval', 'pollIntervalMs', '--poll-interval'],
  ['offline', 'offline', '--offline'],
  ['inventoryDir', 'inventoryDir', '--inventory-dir'],
  ['inventoryInterval', 'inventoryIntervalMs', '--inventory-interval'],
  ['trustedRoot', 'trustedRootFile', '--trusted-root'],
  ['keepPreviousReleases', 'keepPreviousReleases', '--keep-previous-releases'],
  ['chunkCacheMaxBytes', 'chunkCacheMaxBytes', '--chunk-cache-max-bytes'],
  ['fetchConcurrency', 'fetchConcurrency', '--fetch-concurrency'],
  ['fetchBytesPerSecond', 'fetchBytesPerSecond', '--fetch-bytes-per-second'],
  ['fetchDeltas', 'fetchDeltas', '--fetch-deltas'],
  ['stageReuse', 'stageReuse', '--stage-reuse'],
  ['stageVerify', 'stageVerify', '--stage-verify'],
];

/**
 * Merges file (`flags.config` or `FLOTILLA_AGENT_CONFIG`) < env < flags, applies defaults,
 * validates once and returns a frozen config. Throws FLT_CONFIG_INVALID listing every problem
 * in `details.problems`.
 */
export function resolveAgentConfig(input: ResolveAgentConfigInput = {}): AgentConfig {
  const flags = input.flags ?? {};
  const env = input.env ?? process.env;
  const sources = new ConfigCollector(CONFIG_FIELDS);
  const { problems, merged, origins, set } = sources;

  const filePath = flags.config ?? nonEmpty(env.FLOTILLA_AGENT_CONFIG);
  if (filePath !== undefined) sources.readFile(filePath);
  for (const key of Object.keys(CONFIG_FIELDS)) {
    const value = nonEmpty(env[envNameOf(key)]);
    if (value !== undefined) set(key, key === 'registrationKey' ? value.trim() : value, envNameOf(key));
  }
  for (const [flag, key, label] of FLAG_FIELDS) {
    const value = flags[flag];
    if (value !== undefined) set(key, value, label);
  }

  applyDerivedDefaults(merged);
  normalizeServerUrl(merged, origins, problems);
  const config = checkSchema(merged, origins, problems);
  if (problems.length > 0 || config === undefined) {
    throw new FlotillaError(
      'FLT_CONFIG_INVALID',
      `invalid agent configuration:\n  - ${problems.join('\n  - ')}`,
      {
        details: { problems },
      },
    );
  }
  return Object.freeze({ ...config, tags: Object.freeze([...config.tags]) as string[] });
}

function applyDerivedDefaults(merged: Record<string, unknown>) {
  merged.dataDir = resolve(typeof merged.dataDir === 'string' ? merged.dataDir : './.flotilla/agent');
  const dataDir = merged.dataDir as string;
  merged.inventoryDir =
    typeof merged.inventoryDir === 'string' ? resolve(merged.inventoryDir) : join(dataDir, 'inventory.d');
  for (const key of ['registrationKeyFile', 'logFile', 'trustedRootFile'] as const) {
    if (typeof merged[key] === 'string' && merged[key] !== '') merged[key] = resolve(merged[key]);
  }
}

/** Keeps scheme, host and an optional path prefix; refuses anything a base URL cannot carry. */
function normalizeServerUrl(
  merged: Record<string, unknown>,
  origins: Record<string, string>,
  problems: string[],
) {
  const value = merged.serverUrl;
  if (typeof value !== 'string') return;
  const label = origins.serverUrl ?? 'serverUrl';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(`${label}: not a URL (got ${show(value)})`);
    return;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`${label}: must be an http:// or https:// URL (got ${show(value)})`);
  } else if (url.username || url.password || url.search || url.hash) {
    problems.push(`${label}: must not contain credentials, a query or a fragment (got ${show(value)})`);
  } else {
    merged.serverUrl = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  }
}

function checkSchema(
  merged: Record<string, unknown>,
  origins: Record<string, string>,
  problems: string[],
): Static<typeof AgentConfigSchema> | undefined {
  const value = Value.Default(AgentConfigSchema, { ...merged });
  if (Value.Check(AgentConfigSchema, value)) return value;
  const seen = new Set<string>();
  for (const error of Value.Errors(AgentConfigSchema, value)) {
    const key = error.path.split('/')[1] ?? '';
    if (seen.has(key)) continue;
    seen.add(key);
    const label = origins[key] ?? key;
    const shown = key === 'registrationKey' ? '(secret)' : show(merged[key]);
    problems.push(`${label}: ${describe(error)} (got ${shown})`);
  }
  return undefined;
}

/** TypeBox says only "Expected union value" for unions; name the allowed values or the real rule. */
function describe(error: ValueError): string {
  const options = (error.schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (!options) return error.message;
  if (options.every((o) => typeof o.const === 'string'))
    return `must be one of ${options.map((o) => String(o.const)).join(', ')}`;
  for (const branch of error.errors) {
    const first = branch.First();
    if (first && first.message !== 'Expected null') return first.message;
  }
  return error.message;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
