import { FlotillaError } from './errors.js';

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a human duration (`500ms`, `30s`, `5m`, `12h`, `7d`, `2w`, or a bare number of
 * milliseconds) into milliseconds. Throws FLT_VALIDATION with the offending text.
 */
export function parseDurationMs(text: string | number): number {
  if (typeof text === 'number') {
    if (Number.isFinite(text) && text >= 0) return Math.floor(text);
    throw new FlotillaError('FLT_VALIDATION', `invalid duration: ${text}`);
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/.exec(text);
  if (!m)
    throw new FlotillaError(
      'FLT_VALIDATION',
      `invalid duration "${text}" (use e.g. 500ms, 30s, 5m, 12h, 7d)`,
    );
  const value = Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1);
  if (!Number.isFinite(value) || value > Number.MAX_SAFE_INTEGER) {
    throw new FlotillaError('FLT_VALIDATION', `duration out of range: "${text}"`);
  }
  return Math.floor(value);
}

/** Formats milliseconds compactly for humans (`1h30m`, `45s`, `250ms`). */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let s = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join('');
}
