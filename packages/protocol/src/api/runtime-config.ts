/**
 * How a release runs on a device: the `config` custom field of a release target, per runtime
 * (docs/updates.md "Runtimes"). The agent validates it before anything is installed; a release
 * whose config does not match its runtime is refused with FLT_VALIDATION and changes nothing.
 */
import { Type } from '@sinclair/typebox';
import type { Static, TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import type { ValueError } from '@sinclair/typebox/value';
import { SecretRef } from '../secrets.js';

const Argv = Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, maxItems: 256 });
const AbsolutePath = Type.String({ minLength: 2, maxLength: 1024, pattern: '^/[^\\u0000]*$' });
/** A path inside the release tree: relative, no `..` component. */
const TreePath = Type.String({
  minLength: 1,
  maxLength: 1024,
  pattern: '^(?!/)(?!.*(^|/)\\.\\.(/|$))[^\\u0000]+$',
});

/** One way to tell that an app serves: an HTTP URL answering 2xx, a TCP port accepting, or a command exiting 0. */
export const HealthCheckConfig = Type.Object(
  {
    http: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2048 })),
    tcp: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          port: Type.Integer({ minimum: 1, maximum: 65535 }),
        },
        { additionalProperties: false },
      ),
    ),
    command: Type.Optional(Argv),
    /** Time between probes. */
    intervalMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
    /** Timeout of one probe. */
    timeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
    /** The health window: the probe must pass and the app stay up until it ends. */
    windowMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
  },
  { additionalProperties: false },
);
export type HealthCheckConfig = Static<typeof HealthCheckConfig>;

/**
 * The `files` runtime's configuration. The section is optional: a release pushed without any
 * configuration (`{}`) installs its tree at `<data-dir>/apps/<app>/current` and runs nothing.
 */
export const FilesRuntimeConfig = Type.Object(
  {
    files: Type.Optional(
      Type.Object(
        {
          /**
           * Where the tree appears: a symlink to `<data-dir>/apps/<app>/current`, switched atomically.
           * Without it the tree is used where it is, at `<data-dir>/apps/<app>/current`.
           */
          path: Type.Optional(AbsolutePath),
          /** Run after each switch (e.g. `["systemctl","restart","x"]`); a non-zero exit fails the update. */
          postInstall: Type.Optional(Argv),
          postInstallTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
          health: Type.Optional(HealthCheckConfig),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type FilesRuntimeConfig = Static<typeof FilesRuntimeConfig>;

export const RestartPolicy = Type.Union([
  Type.Literal('always'),
  Type.Literal('on-failure'),
  Type.Literal('never'),
]);
export type RestartPolicy = Static<typeof RestartPolicy>;

export const ProcessRuntimeConfig = Type.Object(
  {
    process: Type.Object(
      {
        /** argv; a first element starting with `./` is a program inside the release tree. */
        command: Argv,
        env: Type.Optional(
          Type.Record(
            Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 256 }),
            // A value, or `{ "$secret": "NAME" }`: a secret the device receives sealed to its key.
            Type.Union([Type.String({ maxLength: 32_768 }), SecretRef]),
            {
              maxProperties: 256,
            },
          ),
        ),
        /** Working directory inside the release tree (default its root). */
        cwd: Type.Optional(TreePath),
        restart: Type.Optional(
          Type.Object(
            {
              policy: Type.Optional(RestartPolicy),
              initialDelayMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
              maxDelayMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 3_600_000 })),
            },
            { additionalProperties: false },
          ),
        ),
        /** After SIGTERM, wait this long, then SIGKILL. */
        stopTimeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
        health: Type.Optional(HealthCheckConfig),
        logs: Type.Optional(
          Type.Object(
            {
              maxBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024 })),
              keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type ProcessRuntimeConfig = Static<typeof ProcessRuntimeConfig>;

/** Operator actions delivered on the control channel as commands `rollback` / `restart` with this data. */
export const AppActionData = Type.Object(
  { app: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }) },
  { additionalProperties: false },
);
export type AppActionData = Static<typeof AppActionData>;

/** The schema of each runtime's configuration; runtimes without one here are not checked. */
const RUNTIME_CONFIG_SCHEMAS: Readonly<Record<string, TSchema>> = {
  files: FilesRuntimeConfig,
  process: ProcessRuntimeConfig,
};

/** Most problems one check lists (a config is at most 256 KiB; the first ones are what matters). */
const MAX_PROBLEMS = 50;

/**
 * Every problem of a release's runtime configuration against its runtime's schema (unknown keys,
 * wrong types, impossible values), as `path: what is wrong` lines; empty when it is valid. The CLI
 * and the server check before anything is uploaded or signed, the agent again before installing.
 */
export function runtimeConfigProblems(runtime: string, config: unknown): string[] {
  const schema = RUNTIME_CONFIG_SCHEMAS[runtime];
  if (schema === undefined || Value.Check(schema, config)) return [];
  const problems: string[] = [];
  for (const error of Value.Errors(schema, config)) {
    // A missing value is already reported as required; its type errors would only repeat it.
    if (error.value === undefined && error.type !== ValueErrorType.ObjectRequiredProperty) continue;
    const line = describeConfigError(error);
    if (!problems.includes(line)) problems.push(line);
    if (problems.length >= MAX_PROBLEMS) break;
  }
  return problems;
}

function describeConfigError(error: ValueError): string {
  const segments = error.path
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const where = segments.length === 0 ? '(config)' : segments.join('.');
  if (error.type === ValueErrorType.ObjectAdditionalProperties)
    return `${where}: unknown key (allowed: ${allowedKeys(error.schema)})`;
  if (error.type === ValueErrorType.ObjectRequiredProperty) return `${where}: required`;
  const options = (error.schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (options?.every((o) => typeof o.const === 'string'))
    return `${where}: must be one of ${options.map((o) => String(o.const)).join(', ')} (got ${show(error.value)})`;
  return `${where}: ${error.message.replace(/^Expected/, 'expected')} (got ${show(error.value)})`;
}

function allowedKeys(schema: TSchema): string {
  const properties = (schema as { properties?: Record<string, unknown> }).properties;
  return properties ? Object.keys(properties).join(', ') : 'none';
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
