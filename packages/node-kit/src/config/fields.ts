/**
 * How a configuration value is read from YAML and from text sources (env, flags), shared by the
 * server's and the agent's config (docs/operations.md "Configuration": file < env < flags). Each component
 * keeps its own table of keys; ranges and patterns are its schema's job.
 */
import { parseDurationMs } from '@flotilla/protocol';

export type ConfigFieldKind = 'string' | 'nullableString' | 'integer' | 'duration' | 'boolean' | 'list';

export interface ConfigFieldSpec {
  kind: ConfigFieldKind;
  /** Secrets that must not sit in a file that may be shared or committed. */
  envOnly?: boolean;
}

export type Coerced = { ok: true; value: unknown } | { ok: false; problem: string };

/** `sessionTtlMs` → `FLOTILLA_SESSION_TTL_MS`. */
export function envNameOf(key: string): string {
  return `FLOTILLA_${key.replace(/([A-Z])/g, '_$1').toUpperCase()}`;
}

/** Looks `key` up in `fields` and converts `value` to its kind. */
export function coerceConfigField(
  fields: Readonly<Record<string, ConfigFieldSpec>>,
  key: string,
  value: unknown,
): Coerced {
  const spec = fields[key];
  if (!spec) return { ok: false, problem: `unknown key "${key}"` };
  switch (spec.kind) {
    case 'string':
      return typeof value === 'string' ? { ok: true, value } : fail('must be a string', value);
    case 'nullableString':
      return typeof value === 'string' || value === null
        ? { ok: true, value }
        : fail('must be a string', value);
    case 'integer':
      return toInteger(value);
    case 'duration':
      return toDuration(value);
    case 'boolean':
      return toBoolean(value);
    case 'list':
      return toList(value);
  }
}

function fail(what: string, value: unknown): Coerced {
  return { ok: false, problem: `${what} (got ${showConfigValue(value)})` };
}

function toInteger(value: unknown): Coerced {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return { ok: true, value };
  if (typeof value === 'string' && /^\s*-?\d{1,15}\s*$/.test(value))
    return { ok: true, value: Number(value) };
  return fail('must be an integer', value);
}

function toDuration(value: unknown): Coerced {
  if (typeof value === 'number' || typeof value === 'string') {
    try {
      return { ok: true, value: parseDurationMs(value) };
    } catch {
      // reported below with the accepted forms
    }
  }
  return fail('must be a duration such as 30s, 5m, 12h or a number of milliseconds', value);
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

function toBoolean(value: unknown): Coerced {
  if (typeof value === 'boolean') return { ok: true, value };
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (TRUE_WORDS.has(word)) return { ok: true, value: true };
    if (FALSE_WORDS.has(word)) return { ok: true, value: false };
  }
  return fail('must be true or false', value);
}

/** A YAML list of strings, or comma-separated text (`FLOTILLA_TAGS=a,b`). */
function toList(value: unknown): Coerced {
  if (typeof value === 'string') {
    return {
      ok: true,
      value: value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    };
  }
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return { ok: true, value };
  return fail('must be a list of strings', value);
}

/** A value quoted for a problem message, cut to 80 characters. */
export function showConfigValue(value: unknown): string {
  const text = typeof value === 'string' ? `"${value}"` : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
