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

const Name = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9][a-z0-9_.-]*$' });
const StringList = Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 256 });
const ContainerPath = Type.String({ minLength: 1, maxLength: 1024, pattern: '^/[^\\u0000]*$' });
const Millis = Type.Integer({ minimum: 0, maximum: 3_600_000 });

/**
 * One compose service, normalized by `flotilla release push` (docs/containers.md): lists are arrays,
 * durations milliseconds, `env_file` already read into `environment`, ports and volumes in their
 * long form. Only the keys the docker runtime implements exist; push refuses the others.
 */
export const DockerService = Type.Object(
  {
    /** The image reference as the compose file names it: a key of `images`. */
    image: Type.String({ minLength: 1, maxLength: 512 }),
    command: Type.Optional(StringList),
    entrypoint: Type.Optional(StringList),
    environment: Type.Optional(
      Type.Record(
        Type.String({ minLength: 1, maxLength: 256, pattern: '^[^=\\u0000]+$' }),
        Type.String({ maxLength: 32_768 }),
        {
          maxProperties: 512,
        },
      ),
    ),
    ports: Type.Optional(
      Type.Array(
        Type.Object(
          {
            target: Type.Integer({ minimum: 1, maximum: 65535 }),
            /** The host port; without it the engine picks one. */
            published: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
            host_ip: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])),
          },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    volumes: Type.Optional(
      Type.Array(
        Type.Union([
          Type.Object(
            {
              type: Type.Literal('volume'),
              /** A volume of the top-level `volumes`: the engine keeps it across releases. */
              source: Name,
              target: ContainerPath,
              read_only: Type.Optional(Type.Boolean()),
            },
            { additionalProperties: false },
          ),
          Type.Object(
            {
              type: Type.Literal('bind'),
              /** A path inside the app's data directory (`<data-dir>/apps/<app>/data`); no `..`. */
              source: TreePath,
              target: ContainerPath,
              read_only: Type.Optional(Type.Boolean()),
            },
            { additionalProperties: false },
          ),
        ]),
        { maxItems: 64 },
      ),
    ),
    restart: Type.Optional(
      Type.Union([
        Type.Literal('no'),
        Type.Literal('always'),
        Type.Literal('on-failure'),
        Type.Literal('unless-stopped'),
      ]),
    ),
    healthcheck: Type.Optional(
      Type.Object(
        {
          /** `["CMD", argv...]`, `["CMD-SHELL", "line"]` or `["NONE"]`. */
          test: Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 256 }),
          interval_ms: Type.Optional(Millis),
          timeout_ms: Type.Optional(Millis),
          start_period_ms: Type.Optional(Millis),
          retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
        },
        { additionalProperties: false },
      ),
    ),
    depends_on: Type.Optional(
      Type.Record(
        Name,
        Type.Object(
          {
            condition: Type.Union([
              Type.Literal('service_started'),
              Type.Literal('service_healthy'),
              Type.Literal('service_completed_successfully'),
            ]),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    labels: Type.Optional(
      Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.String({ maxLength: 4096 })),
    ),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    working_dir: Type.Optional(ContainerPath),
    cap_add: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64 })),
    cap_drop: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64 })),
    devices: Type.Optional(
      Type.Array(
        Type.Object(
          {
            source: AbsolutePath,
            target: ContainerPath,
            permissions: Type.Optional(Type.String({ pattern: '^[rwm]{1,3}$' })),
          },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    logging: Type.Optional(
      Type.Object(
        {
          driver: Type.Optional(Type.Union([Type.Literal('json-file'), Type.Literal('local')])),
          options: Type.Optional(
            Type.Object(
              {
                'max-size': Type.Optional(Type.String({ pattern: '^[0-9]+[kmg]?$' })),
                'max-file': Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type DockerService = Static<typeof DockerService>;

/** How the runtime replaces a changed service: compose's `deploy.update_config.order`. */
export const DockerUpdateStrategy = Type.Union([Type.Literal('stop-start'), Type.Literal('start-stop')]);
export type DockerUpdateStrategy = Static<typeof DockerUpdateStrategy>;

/**
 * The `docker` runtime's configuration (docs/containers.md): a normalized compose project, the image
 * id each image reference stands for (the signed release pins images by id, never by tag), and each
 * service's update strategy.
 */
export const DockerRuntimeConfig = Type.Object(
  {
    docker: Type.Object(
      {
        compose: Type.Object(
          {
            services: Type.Record(Name, DockerService, { minProperties: 1, maxProperties: 64 }),
            /** Named volumes (no options): created per app, never deleted by an update. */
            volumes: Type.Optional(Type.Array(Name, { maxItems: 64 })),
          },
          { additionalProperties: false },
        ),
        images: Type.Record(
          Type.String({ minLength: 1, maxLength: 512 }),
          Type.String({ pattern: '^sha256:[0-9a-f]{64}$' }),
          { maxProperties: 64 },
        ),
        /** Per service; `stop-start` when absent. */
        strategy: Type.Optional(Type.Record(Name, DockerUpdateStrategy)),
        health: Type.Optional(
          Type.Object(
            {
              /** Every container must stay running (no restart) this long (default 5000). */
              windowMs: Type.Optional(Millis),
              /** Healthchecks and `depends_on` conditions must be met within this (default 60000). */
              timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
            },
            { additionalProperties: false },
          ),
        ),
        /** Seconds between SIGTERM and SIGKILL when a container stops (default 10). */
        stopTimeoutS: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type DockerRuntimeConfig = Static<typeof DockerRuntimeConfig>;

/**
 * What the schema cannot say about a docker configuration: every image named has an id, every
 * volume and `depends_on` names one that exists, `depends_on` has no cycle, a `start-stop` service
 * publishes no fixed host port (old and new container run side by side).
 */
export function dockerConfigProblems(config: DockerRuntimeConfig): string[] {
  const problems: string[] = [];
  const { services, volumes = [] } = config.docker.compose;
  for (const [name, service] of Object.entries(services)) {
    const at = `docker.compose.services.${name}`;
    if (config.docker.images[service.image] === undefined)
      problems.push(`${at}.image: ${service.image} has no image id in docker.images`);
    for (const v of service.volumes ?? [])
      if (v.type === 'volume' && !volumes.includes(v.source))
        problems.push(`${at}.volumes: volume ${v.source} is not declared in the top-level volumes`);
    for (const dep of Object.keys(service.depends_on ?? {}))
      if (services[dep] === undefined) problems.push(`${at}.depends_on: no service ${dep}`);
    if (
      config.docker.strategy?.[name] === 'start-stop' &&
      (service.ports ?? []).some((p) => p.published !== undefined)
    )
      problems.push(
        `${at}: start-stop cannot publish a fixed host port (the old and new container run side by side)`,
      );
  }
  for (const name of Object.keys(config.docker.strategy ?? {}))
    if (services[name] === undefined) problems.push(`docker.strategy.${name}: no such service`);
  if (problems.length === 0 && dockerServiceOrder(services) === null)
    problems.push('docker.compose.services: depends_on has a cycle');
  return problems;
}

/** Services in an order where each comes after those it depends on; null on a cycle. */
export function dockerServiceOrder(services: Readonly<Record<string, DockerService>>): string[] | null {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string): boolean => {
    const s = state.get(name);
    if (s === 'done') return true;
    if (s === 'visiting') return false;
    state.set(name, 'visiting');
    for (const dep of Object.keys(services[name]?.depends_on ?? {}).sort())
      if (services[dep] !== undefined && !visit(dep)) return false;
    state.set(name, 'done');
    order.push(name);
    return true;
  };
  for (const name of Object.keys(services).sort()) if (!visit(name)) return null;
  return order;
}

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
  docker: DockerRuntimeConfig,
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
  if (schema === undefined) return [];
  if (Value.Check(schema, config))
    return runtime === 'docker' ? dockerConfigProblems(config as DockerRuntimeConfig) : [];
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
