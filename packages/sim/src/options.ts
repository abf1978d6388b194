/**
 * The simulator's knobs as the CLI spells them: durations and ranges of durations (`2s..20s`),
 * rates (`1%`, `0.01`), a crash-loop spec (`20s:0.5%`). Bad input is FLT_VALIDATION with the text.
 */
import { FlotillaError, parseDurationMs } from '@flotilla/protocol';

export interface DurationRange {
  minMs: number;
  maxMs: number;
}

export interface CrashSpec {
  /** How long after a commit the app starts crashing. */
  afterMs: number;
  /** The share of devices (0..1) whose app crash-loops. */
  rate: number;
}

function invalid(what: string, text: string, hint: string): never {
  throw new FlotillaError('FLT_VALIDATION', `${what} "${text}": ${hint}`, { details: { value: text } });
}

export function parseDuration(what: string, text: string): number {
  try {
    return parseDurationMs(text.trim());
  } catch {
    return invalid(what, text, 'expected a duration such as 0, 500ms, 2s or 1m');
  }
}

/** `2s` (always 2 s) or `2s..20s` (uniformly between). */
export function parseDurationRange(what: string, text: string): DurationRange {
  const parts = text.split('..');
  if (parts.length > 2) invalid(what, text, 'expected a duration or a range such as 2s..20s');
  const minMs = parseDuration(what, parts[0]!);
  const maxMs = parts.length === 2 ? parseDuration(what, parts[1]!) : minMs;
  if (maxMs < minMs) invalid(what, text, 'the range ends before it starts');
  return { minMs, maxMs };
}

/** `1%`, `0.5%` or a fraction `0.01`; between 0 and 1. */
export function parseRate(what: string, text: string): number {
  const t = text.trim();
  const percent = t.endsWith('%');
  const value = Number(percent ? t.slice(0, -1) : t);
  if (t === '' || t === '%' || !Number.isFinite(value))
    invalid(what, text, 'expected a rate such as 1% or 0.01');
  const rate = percent ? value / 100 : value;
  if (rate < 0 || rate > 1) invalid(what, text, 'a rate is between 0% and 100%');
  return rate;
}

/** `20s:0.5%`: after 20 s, 0.5 % of the devices' apps crash-loop. */
export function parseCrashSpec(what: string, text: string): CrashSpec {
  const at = text.lastIndexOf(':');
  if (at <= 0) invalid(what, text, 'expected AFTER:RATE such as 20s:0.5%');
  return { afterMs: parseDuration(what, text.slice(0, at)), rate: parseRate(what, text.slice(at + 1)) };
}
