/** How each configuration key is read from text sources (env, flags) and YAML values. */
import { parseDurationMs } from '@flotilla/protocol';

type FieldKind = 'string' | 'integer' | 'duration' | 'boolean';

interface FieldSpec {
  kind: FieldKind;
  /** Secrets that must not sit in a file that may be shared or committed. */
  envOnly?: boolean;
}

export const CONFIG_FIELDS: Readonly<Record<string, FieldSpec>> = {
  listenHost: { kind: 'string' },
  listenPort: { kind: 'integer' },
  dataDir: { kind: 'string' },
  database: { kind: 'string' },
  logLevel: { kind: 'string' },
  logFormat: { kind: 'string' },
  bodyLimitBytes: { kind: 'integer' },
  maxHeaderBytes: { kind: 'integer' },
  adminUsername: { kind: 'string' },
  adminPassword: { kind: 'string', envOnly: true },
  sessionTtlMs: { kind: 'duration' },
  deviceTokenTtlMs: { kind: 'duration' },
  nonceTtlMs: { kind: 'duration' },
  devicePollIntervalMs: { kind: 'duration' },
  heartbeatIntervalMs: { kind: 'duration' },
  offlineAfterMs: { kind: 'duration' },
  publicUrl: { kind: 'string' },
  trustProxy: { kind: 'boolean' },
  objectGcGraceMs: { kind: 'duration' },
  objectGcIntervalMs: { kind: 'duration' },
  maxUploadBytes: { kind: 'integer' },
  allowServerSideSigning: { kind: 'boolean' },
};

/** `sessionTtlMs` → `FLOTILLA_SESSION_TTL_MS`. */
export function envNameOf(key: string): string {
  return `FLOTILLA_${key.replace(/([A-Z])/g, '_$1').toUpperCase()}`;
}

export type Coerced = { ok: true; value: unknown } | { ok: false; problem: string };

/** Converts a YAML value or a text value to the field's type; range checks are the schema's job. */
export function coerceField(key: string, value: unknown): Coerced {
  const spec = CONFIG_FIELDS[key];
  if (!spec) return { ok: false, problem: `unknown key "${key}"` };
  switch (spec.kind) {
    case 'string':
      return typeof value === 'string'
        ? { ok: true, value }
        : { ok: false, problem: `must be a string (got ${show(value)})` };
    case 'integer':
      return toInteger(value);
    case 'duration':
      return toDuration(value);
    case 'boolean':
      return toBoolean(value);
  }
}

function toInteger(value: unknown): Coerced {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return { ok: true, value };
  if (typeof value === 'string' && /^\s*-?\d{1,15}\s*$/.test(value))
    return { ok: true, value: Number(value) };
  return { ok: false, problem: `must be an integer (got ${show(value)})` };
}

function toDuration(value: unknown): Coerced {
  if (typeof value !== 'number' && typeof value !== 'string') {
    return {
      ok: false,
      problem: `must be a duration such as 30s, 5m, 12h or a number of milliseconds (got ${show(value)})`,
    };
  }
  try {
    return { ok: true, value: parseDurationMs(value) };
  } catch {
    return {
      ok: false,
      problem: `must be a duration such as 30s, 5m, 12h or a number of milliseconds (got ${show(value)})`,
    };
  }
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
  return { ok: false, problem: `must be true or false (got ${show(value)})` };
}

function show(value: unknown): string {
  const text = typeof value === 'string' ? `"${value}"` : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
