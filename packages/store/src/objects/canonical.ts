import { FlotillaError } from '@flotilla/protocol';

/**
 * Canonical JSON for tree objects: object keys sorted, no whitespace, strings escaped as
 * ECMAScript's JSON.stringify does, numbers only as non-negative safe integers. Within that value
 * domain this is exactly RFC 8785 (JCS), which defers to JSON.stringify for strings and integers.
 * It is written here rather than taken from the `canonicalize` package because that package
 * requires Node 22 and the domain (strings, integers, arrays, plain objects) is a few lines.
 */
export type CanonicalValue =
  string | number | CanonicalValue[] | { [key: string]: CanonicalValue | undefined };

export function canonicalJson(value: CanonicalValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new FlotillaError(
        'FLT_MANIFEST_INVALID',
        `numbers in objects must be non-negative safe integers (got ${value})`,
      );
    }
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value)
    .filter((key) => value[key] !== undefined)
    .sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key]!)}`).join(',')}}`;
}
