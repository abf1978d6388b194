/** How each configuration key is read from YAML values and from text sources (env, flags). */
import { parseDurationMs } from '@flotilla/protocol';

type FieldKind = 'string' | 'nullableString' | 'integer' | 'duration' | 'boolean' | 'list';

interface FieldSpec {
  kind: FieldKind;
  /** Secrets that must not sit in a file that may be shared or committed. */
  envOnly?: boolean;
}

export const CONFIG_FIELDS: Readonly<Record<string, FieldSpec>> = {
  serverUrl: { kind: 'nullableString' },
  dataDir: { kind: 'string' },
  registrationKeyFile: { kind: 'nullableString' },
  registrationKey: { kind: 'nullableString', envOnly: true },
  tags: { kind: 'list' },
  logFile: { kind: 'nullableString' },
  logLevel: { kind: 'string' },
  logFormat: { kind: 'string' },
  pollIntervalMs: { kind: 'duration' },
  offline: { kind: 'boolean' },
  inventoryDir: { kind: 'string' },
  inventoryIntervalMs: { kind: 'duration' },
  inventoryCheckIntervalMs: { kind: 'duration' },
  inventoryScriptTimeoutMs: { kind: 'duration' },
  inventoryScriptMaxOutputBytes: { kind: 'integer' },
  requestTimeoutMs: { kind: 'duration' },
  maxResponseBytes: { kind: 'integer' },
  heartbeatIntervalMs: { kind: 'duration' },
  stopTimeoutMs: { kind: 'duration' },
  keepPreviousReleases: { kind: 'integer' },
  chunkCacheMaxBytes: { kind: 'integer' },
  fetchConcurrency: { kind: 'integer' },
  fetchBytesPerSecond: { kind: 'integer' },
  trustedRootFile: { kind: 'nullableString' },
};

/** `pollIntervalMs` → `FLOTILLA_POLL_INTERVAL_MS`. */
export function envNameOf(key: string): string {
  return `FLOTILLA_${key.replace(/([A-Z])/g, '_$1').toUpperCase()}`;
}

export type Coerced = { ok: true; value: unknown } | { ok: false; problem: string };

/** Converts a YAML or text value to the field's type; ranges and patterns are the schema's job. */
export function coerceField(key: string, value: unknown): Coerced {
  const spec = CONFIG_FIELDS[key];
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
  return { ok: false, problem: `${what} (got ${show(value)})` };
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
  return fail('must be a duration such as 30s, 5m, 1h or a number of milliseconds', value);
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

export function show(value: unknown): string {
  const text = typeof value === 'string' ? `"${value}"` : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
