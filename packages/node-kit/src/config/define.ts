/**
 * A component's configuration keys, each declared once: its schema (type, range, default), how text
 * becomes a value, its doc line and unit, its environment variable (derived from the name) and its
 * CLI flag. The schema, the coercion table, the flag mapping and the CLI's options are all derived
 * from this one table, so a key cannot be settable in one place and refused in another.
 */
import { Type } from '@flotilla/protocol';
import type { TObject, TSchema } from '@flotilla/protocol';
import { envNameOf } from './fields.js';
import type { ConfigFieldKind, ConfigFieldSpec } from './fields.js';

export interface ConfigKeySpec {
  /** The value's schema: type, range, pattern and `default`. */
  schema: TSchema;
  /** How a value from YAML or text (env, flag) is read. */
  kind: ConfigFieldKind;
  /** One line for `--help` and the docs. */
  doc: string;
  /** Unit of a number (`ms`, `bytes`, `bytes/s`); durations also accept `30s`, `5m`. */
  unit?: string;
  /** Secrets: only from the environment, never a file or a flag. */
  envOnly?: boolean;
  /**
   * The CLI flag, without `--`; `arg` names its argument (`<file>`), none for a switch. Omitted:
   * the key has no flag (file and environment only).
   */
  flag?: { name: string; arg?: string };
}

/** One CLI option generated from a key. */
export interface ConfigCliOption {
  key: string;
  /** Commander's flags text, e.g. `--trusted-root <file>`. */
  flags: string;
  description: string;
  /** The property commander stores the value under (`trustedRoot`). */
  property: string;
}

type SchemasOf<K extends Record<string, ConfigKeySpec>> = { [P in keyof K]: K[P]['schema'] };

export interface ConfigDefinition<K extends Record<string, ConfigKeySpec>> {
  readonly keys: K;
  /** The component's schema: every key, no others. */
  readonly schema: TObject<SchemasOf<K>>;
  /** How each key is read from text (for ConfigCollector). */
  readonly fields: Readonly<Record<string, ConfigFieldSpec>>;
  /** The CLI options, in declaration order. */
  readonly cliOptions: readonly ConfigCliOption[];
}

/** `trusted-root` → `trustedRoot` (what commander does with a flag name). */
export function flagProperty(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Derives schema, coercion table and CLI options from the keys (see the module comment). */
export function defineConfig<K extends Record<string, ConfigKeySpec>>(keys: K): ConfigDefinition<K> {
  const properties: Record<string, TSchema> = {};
  const fields: Record<string, ConfigFieldSpec> = {};
  const cliOptions: ConfigCliOption[] = [];
  for (const [key, spec] of Object.entries(keys)) {
    properties[key] = spec.schema;
    fields[key] = { kind: spec.kind, ...(spec.envOnly === true && { envOnly: true }) };
    if (spec.flag === undefined || spec.envOnly === true) continue;
    const { name, arg } = spec.flag;
    const fallback = (spec.schema as { default?: unknown }).default;
    const notes = [
      spec.unit !== undefined ? spec.unit : null,
      fallback !== undefined && fallback !== null && !(Array.isArray(fallback) && fallback.length === 0)
        ? `default ${JSON.stringify(fallback)}`
        : null,
      `$${envNameOf(key)}`,
    ].filter((n): n is string => n !== null);
    cliOptions.push({
      key,
      flags: arg === undefined ? `--${name}` : `--${name} ${arg}`,
      description: `${spec.doc} (${notes.join('; ')})`,
      property: flagProperty(name),
    });
  }
  return {
    keys,
    schema: Type.Object(properties as SchemasOf<K>, { additionalProperties: false }),
    fields,
    cliOptions,
  };
}
