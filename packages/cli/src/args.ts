/**
 * Parsers for option values. They throw commander's InvalidArgumentError, so a malformed value is a
 * usage error (exit 2) reported before anything is sent to a server.
 */
import { InvalidArgumentError, Option } from 'commander';
import { LIMITS, NAME_PATTERN, parseDurationMs } from '@flotilla/protocol';
import type { Role } from '@flotilla/protocol';
import { normalizeServerUrl } from './api/server-url.js';

export function serverUrlArg(value: string): string {
  try {
    return normalizeServerUrl(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function integerArg(value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
  const n = Number(value);
  if (n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
  return n;
}

export const pageLimitArg = (value: string) => integerArg(value, 1, LIMITS.pageSizeMax);
export const offsetArg = (value: string) => integerArg(value, 0, Number.MAX_SAFE_INTEGER);
export const positiveIntArg = (value: string) => integerArg(value, 1, 1_000_000_000);

const TAG = new RegExp(NAME_PATTERN);

/** `a,b,c` → ['a','b','c'], each a valid tag name, no duplicates. Repeating the option appends. */
export function tagListArg(value: string, previous: string[] | undefined): string[] {
  const tags = value
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  for (const tag of tags) {
    if (!TAG.test(tag))
      throw new InvalidArgumentError(`"${tag}" is not a valid tag (letters, digits, _ . : / -)`);
  }
  return [...new Set([...(previous ?? []), ...tags])];
}

/** A duration as the API takes it (`30m`, `12h`, `7d`), checked here for a clear early error. */
export function durationArg(value: string): string {
  const text = value.trim();
  if (!/^\d+(\.\d+)?(ms|s|m|h|d|w)$/.test(text)) {
    throw new InvalidArgumentError('must be a duration with a unit, e.g. 30m, 12h, 7d, 2w');
  }
  if (parseDurationMs(text) === 0) throw new InvalidArgumentError('must be longer than zero');
  return text;
}

export const ROLES: readonly Role[] = ['admin', 'deployer', 'viewer'];

export function roleArg(value: string): Role {
  const role = ROLES.find((r) => r === value);
  if (!role) throw new InvalidArgumentError(`must be one of ${ROLES.join(', ')}`);
  return role;
}

/** An RFC 3339 time, or a duration meaning "that long ago" (`2h` → two hours before now). */
export function timeArg(value: string): string {
  const text = value.trim();
  if (/^\d+(\.\d+)?(ms|s|m|h|d|w)$/.test(text)) {
    return new Date(Date.now() - parseDurationMs(text)).toISOString();
  }
  const at = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(at)) {
    throw new InvalidArgumentError('must be a time like 2026-01-31T12:00:00Z or a duration ago like 2h, 7d');
  }
  return new Date(at).toISOString();
}

export function nonEmptyArg(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('must not be empty');
  return value;
}

export const LOG_FORMATS = ['pretty', 'json'] as const;

export function logFormatArg(value: string): (typeof LOG_FORMATS)[number] {
  const format = LOG_FORMATS.find((f) => f === value);
  if (!format) throw new InvalidArgumentError(`must be one of ${LOG_FORMATS.join(', ')}`);
  return format;
}

/** `--log-level`, as the commands that run a daemon offer it. */
export function logLevelOption(): Option {
  return new Option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)');
}

/** `--log-format`, as the commands that run a daemon offer it. */
export function logFormatOption(): Option {
  return new Option(
    '--log-format <format>',
    'pretty or json (default: pretty on a terminal, else json)',
  ).argParser(logFormatArg);
}
