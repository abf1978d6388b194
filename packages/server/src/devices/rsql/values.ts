/** Parsing of filter operands: numbers, timestamps, statuses, booleans. */
import { parseDurationMs } from '@flotilla/protocol';
import { filterError } from './parse.js';

const NUMBER_TEXT = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const DATE_TEXT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;
const RELATIVE_TEXT = /^-\d+(\.\d+)?(ms|s|m|h|d|w)$/;

/** The number a text denotes when it is written as a plain decimal number, else undefined. */
export function numericValue(text: string): number | undefined {
  if (!NUMBER_TEXT.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * A timestamp operand as stored (ISO-8601 UTC): `2026-11-01`, `2026-11-01T12:00:00Z`, an offset form,
 * or relative to now (`-1h`, `-7d`).
 */
export function timestampValue(selector: string, text: string, now: Date): string {
  const ms = RELATIVE_TEXT.test(text)
    ? now.getTime() - durationOrNaN(text.slice(1))
    : DATE_TEXT.test(text)
      ? Date.parse(text)
      : Number.NaN;
  if (Number.isNaN(ms) || Number.isNaN(new Date(ms).getTime())) {
    throw filterError(`"${text}" is not a timestamp (use 2026-11-01, 2026-11-01T12:00:00Z or -1h)`, {
      selector,
    });
  }
  return new Date(ms).toISOString();
}

function durationOrNaN(text: string): number {
  try {
    return parseDurationMs(text);
  } catch {
    return Number.NaN;
  }
}

export function booleanValue(selector: string, text: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw filterError(`${selector} takes true or false, not "${text}"`, { selector });
}

export function oneOf<T extends string>(selector: string, text: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw filterError(`${selector} must be one of ${allowed.join(', ')} (got "${text}")`, { selector });
}
