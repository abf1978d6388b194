import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import type { Static, TSchema } from '@flotilla/protocol';

const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: false, strict: false });

/**
 * Applies defaults and validates; returns the typed value when valid, else appends one problem
 * per failing key (`origin (key): message`) and returns undefined.
 */
export function checkAgainstSchema<T extends TSchema>(
  schema: T,
  value: Record<string, unknown>,
  problems: string[],
  origins: Record<string, string> = {},
): Static<T> | undefined {
  const validate = ajv.compile<Static<T>>(schema);
  const copy = { ...value };
  if (validate(copy)) return copy;
  const byKey = new Map<string, ErrorObject[]>();
  for (const err of validate.errors ?? []) {
    const key =
      err.instancePath.split('/')[1] ??
      (typeof err.params.missingProperty === 'string' ? err.params.missingProperty : '') ??
      '';
    const name =
      key || (typeof err.params.additionalProperty === 'string' ? err.params.additionalProperty : '(root)');
    byKey.set(name, [...(byKey.get(name) ?? []), err]);
  }
  for (const [key, errors] of byKey) {
    const origin = origins[key];
    const label = origin && origin !== key ? `${origin} (${key})` : key;
    problems.push(`${label}: ${describe(errors, schemaOf(schema, key))}`);
  }
  return undefined;
}

function schemaOf(schema: TSchema, key: string): TSchema | undefined {
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  return props?.[key];
}

function describe(errors: ErrorObject[], fieldSchema: TSchema | undefined): string {
  const anyOf = (fieldSchema as { anyOf?: { const?: unknown }[] } | undefined)?.anyOf;
  if (anyOf && anyOf.every((s) => s.const !== undefined)) {
    return `must be one of ${anyOf.map((s) => String(s.const)).join(', ')}`;
  }
  const specific = errors.find((e) => !['anyOf', 'type', 'const'].includes(e.keyword)) ?? errors[0];
  if (!specific) return 'is invalid';
  if (specific.keyword === 'pattern')
    return `has the wrong form (expected ${String(specific.params.pattern)})`;
  if (specific.keyword === 'additionalProperties') return 'is not a known key';
  return specific.message ?? specific.keyword;
}
