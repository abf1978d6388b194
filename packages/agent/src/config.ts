/**
 * The agent's configuration: one schema with defaults and units in the names; sources merged
 * YAML file < `FLOTILLA_*` environment < flags, validated once, frozen (docs/updates.md "Configuration (agent)").
 */
import { join, resolve } from 'node:path';
import { FlotillaError, LIMITS, NAME_PATTERN, Type } from '@flotilla/protocol';
import { ConfigCollector, defineConfig, envNameOf, showConfigValue as show } from '@flotilla/node-kit';
import type { Static } from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';
import type { ValueError } from '@sinclair/typebox/value';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const nullable = <T extends ReturnType<typeof Type.String>>(schema: T) =>
  Type.Union([schema, Type.Null()], { default: null });

/**
 * Every key of the agent's configuration, declared once: schema and default, how text is read, doc,
 * unit, environment variable (`FLOTILLA_` + the name in upper snake case) and CLI flag. The CLI's
 * `flotilla agent` options are generated from this table (`AGENT_CONFIG.cliOptions`).
 */
export const AGENT_CONFIG = defineConfig({
  serverUrl: {
    schema: nullable(Type.String({ minLength: 1 })),
    kind: 'nullableString',
    doc: 'base URL of the Flotilla server (https://host[:port][/prefix]); default: the one enrolled with',
    flag: { name: 'server', arg: '<url>' },
  },
  dataDir: {
    schema: Type.String({ minLength: 1 }),
    kind: 'string',
    doc: "the agent's state: identity, releases, cache (default ./.flotilla/agent)",
    flag: { name: 'data-dir', arg: '<dir>' },
  },
  registrationKeyFile: {
    schema: nullable(Type.String({ minLength: 1 })),
    kind: 'nullableString',
    doc: 'file holding the registration key used to enroll (read only when the device must enroll)',
    flag: { name: 'registration-key-file', arg: '<file>' },
  },
  registrationKey: {
    schema: nullable(Type.String({ minLength: 8, maxLength: 256 })),
    kind: 'nullableString',
    doc: 'the registration key itself; never logged',
    envOnly: true,
  },
  tags: {
    schema: Type.Array(Type.String({ pattern: NAME_PATTERN }), {
      maxItems: LIMITS.tagsPerDevice,
      uniqueItems: true,
      default: [],
    }),
    kind: 'list',
    doc: "tags this device asks for at enrollment (the registration key's are added)",
    flag: { name: 'tags', arg: '<a,b>' },
  },
  logFile: {
    schema: nullable(Type.String({ minLength: 1 })),
    kind: 'nullableString',
    doc: 'write logs to this file instead of stdout',
    flag: { name: 'log-file', arg: '<file>' },
  },
  logLevel: {
    schema: Type.Union(
      LOG_LEVELS.map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    kind: 'string',
    doc: LOG_LEVELS.join(', '),
    flag: { name: 'log-level', arg: '<level>' },
  },
  logFormat: {
    schema: Type.Union([Type.Literal('pretty'), Type.Literal('json')], { default: 'json' }),
    kind: 'string',
    doc: 'pretty or json (the CLI: pretty on a terminal unless set)',
    flag: { name: 'log-format', arg: '<format>' },
  },
  pollIntervalMs: {
    schema: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 30_000 }),
    kind: 'duration',
    doc: "time between state polls (the server's pollIntervalMs overrides it), e.g. 30s",
    unit: 'ms',
    flag: { name: 'poll-interval', arg: '<duration>' },
  },
  offline: {
    schema: Type.Boolean({ default: false }),
    kind: 'boolean',
    doc: 'do not contact the server; keep running the installed releases',
    flag: { name: 'offline' },
  },
  updateOnStart: {
    schema: Type.Boolean({ default: false }),
    kind: 'boolean',
    doc: 'at start, check for and apply updates (apps and the agent itself) before the session settles',
    flag: { name: 'update-on-start' },
  },
  once: {
    schema: Type.Boolean({ default: false }),
    kind: 'boolean',
    doc: 'one update pass as --update-on-start, then exit (status 1 if an update failed or was rolled back): for a periodic timer',
    flag: { name: 'once' },
  },
  inventoryDir: {
    schema: Type.String({ minLength: 1 }),
    kind: 'string',
    doc: 'directory of executables that print extra facts (default <data-dir>/inventory.d)',
    flag: { name: 'inventory-dir', arg: '<dir>' },
  },
  inventoryIntervalMs: {
    schema: Type.Integer({ minimum: 1000, default: 3_600_000 }),
    kind: 'duration',
    doc: 'inventory is reported at least this often, changed or not, e.g. 1h',
    unit: 'ms',
    flag: { name: 'inventory-interval', arg: '<duration>' },
  },
  inventoryCheckIntervalMs: {
    schema: Type.Integer({ minimum: 1000, default: 60_000 }),
    kind: 'duration',
    doc: 'how often facts are re-collected to detect a change',
    unit: 'ms',
  },
  inventoryScriptTimeoutMs: {
    schema: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
    kind: 'duration',
    doc: 'an inventory script running longer than this is killed and skipped',
    unit: 'ms',
  },
  inventoryScriptMaxOutputBytes: {
    schema: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024, default: 256 * 1024 }),
    kind: 'integer',
    doc: 'an inventory script printing more than this is killed and skipped',
    unit: 'bytes',
  },
  requestTimeoutMs: {
    schema: Type.Integer({ minimum: 100, maximum: 600_000, default: 15_000 }),
    kind: 'duration',
    doc: 'timeout of one HTTP request to the server',
    unit: 'ms',
  },
  maxResponseBytes: {
    schema: Type.Integer({ minimum: 1024, maximum: 256 * 1024 * 1024, default: 4 * 1024 * 1024 }),
    kind: 'integer',
    doc: 'largest HTTP response body accepted from the server',
    unit: 'bytes',
  },
  heartbeatIntervalMs: {
    schema: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 25_000 }),
    kind: 'duration',
    doc: "WebSocket heartbeat until the server's welcome says otherwise",
    unit: 'ms',
  },
  stopTimeoutMs: {
    schema: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
    kind: 'duration',
    doc: 'graceful stop period; after it, connections are cut and the state database closed',
    unit: 'ms',
  },
  keepPreviousReleases: {
    schema: Type.Integer({ minimum: 0, maximum: 10, default: 1 }),
    kind: 'integer',
    doc: 'previous releases kept per app for instant rollback',
    flag: { name: 'keep-previous-releases', arg: '<n>' },
  },
  chunkCacheMaxBytes: {
    schema: Type.Integer({ minimum: 0, default: 1024 * 1024 * 1024 }),
    kind: 'integer',
    doc: 'size cap of the chunk cache; current and previous releases are never evicted',
    unit: 'bytes',
    flag: { name: 'chunk-cache-max-bytes', arg: '<bytes>' },
  },
  fetchConcurrency: {
    schema: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
    kind: 'integer',
    doc: 'parallel object downloads',
    flag: { name: 'fetch-concurrency', arg: '<n>' },
  },
  fetchBytesPerSecond: {
    schema: Type.Integer({ minimum: 0, default: 0 }),
    kind: 'integer',
    doc: 'download bandwidth limit; 0 = unlimited',
    unit: 'bytes/s',
    flag: { name: 'fetch-bytes-per-second', arg: '<bytes>' },
  },
  fetchDeltas: {
    schema: Type.Boolean({ default: true }),
    kind: 'boolean',
    doc: 'ask for changed files as deltas against the installed release (true or false)',
    flag: { name: 'fetch-deltas', arg: '<bool>' },
  },
  stageReuse: {
    schema: Type.Union([Type.Literal('link'), Type.Literal('copy'), Type.Literal('off')], {
      default: 'link',
    }),
    kind: 'string',
    doc: 'unchanged files when staging: link (hardlink), copy (reflink where possible) or off',
    flag: { name: 'stage-reuse', arg: '<mode>' },
  },
  stageVerify: {
    schema: Type.Union([Type.Literal('stamp'), Type.Literal('content')], { default: 'stamp' }),
    kind: 'string',
    doc: 'how an installed file is verified before linking: stamp (unchanged inode, size, mtime) or content',
    flag: { name: 'stage-verify', arg: '<mode>' },
  },
  deltaThreads: {
    schema: Type.Integer({ minimum: 0, maximum: 8, default: 1 }),
    kind: 'integer',
    doc: 'worker threads rebuilding files from deltas (at most CPUs - 1); 0: on the main thread',
  },
  tunnelHostPorts: {
    schema: Type.Array(Type.String({ pattern: '^[1-9][0-9]{0,4}$' }), { maxItems: 64, default: [] }),
    kind: 'list',
    doc: 'ports of this device (127.0.0.1) an admin may open a tunnel to without naming an app, e.g. 22 (default: none)',
    flag: { name: 'tunnel-host-ports', arg: '<p,q>' },
  },
  trustedRootFile: {
    schema: nullable(Type.String({ minLength: 1 })),
    kind: 'nullableString',
    doc: "the image repository's root.json to trust (default: trust the server's on first use)",
    flag: { name: 'trusted-root', arg: '<file>' },
  },
});

export const AgentConfigSchema = AGENT_CONFIG.schema;
export type AgentConfig = Readonly<Static<typeof AgentConfigSchema>>;

/**
 * Flag values by the property commander stores them under (`trustedRoot` for `--trusted-root`,
 * see AGENT_CONFIG.cliOptions), and `config`, the path of a YAML configuration file.
 */
export type AgentFlags = Readonly<Record<string, unknown>> & {
  config?: string;
  server?: string;
  logFormat?: 'pretty' | 'json';
};

export interface ResolveAgentConfigInput {
  flags?: AgentFlags;
  /** Defaults to `process.env`; injectable for tests. */
  env?: Record<string, string | undefined>;
}

/**
 * Merges file (`flags.config` or `FLOTILLA_AGENT_CONFIG`) < env < flags, applies defaults,
 * validates once and returns a frozen config. Throws FLT_CONFIG_INVALID listing every problem
 * in `details.problems`.
 */
export function resolveAgentConfig(input: ResolveAgentConfigInput = {}): AgentConfig {
  const flags = input.flags ?? {};
  const env = input.env ?? process.env;
  const sources = new ConfigCollector(AGENT_CONFIG.fields);
  const { problems, merged, origins, set } = sources;

  const filePath = flags.config ?? nonEmpty(env.FLOTILLA_AGENT_CONFIG);
  if (filePath !== undefined) sources.readFile(filePath);
  for (const key of Object.keys(AGENT_CONFIG.fields)) {
    const value = nonEmpty(env[envNameOf(key)]);
    if (value !== undefined) set(key, key === 'registrationKey' ? value.trim() : value, envNameOf(key));
  }
  for (const option of AGENT_CONFIG.cliOptions) {
    const value = flags[option.property];
    if (value !== undefined) set(option.key, value, option.flags.split(' ')[0] ?? option.key);
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
