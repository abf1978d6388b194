/**
 * Validation of wire and config values with TypeBox (the library the protocol's schemas are written
 * in), so the agent checks exactly the contract the server implements.
 */
import { FormatRegistry } from '@sinclair/typebox';
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

// TypeBox rejects unknown formats; the protocol's timestamps use `date-time` (RFC 3339).
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (value) => RFC3339.test(value) && !Number.isNaN(Date.parse(value)));
}

export function matches<T extends TSchema>(schema: T, value: unknown): value is Static<T> {
  return Value.Check(schema, value);
}

/** Human-readable problems (`/path: message`), at most `limit` of them. */
export function schemaProblems(schema: TSchema, value: unknown, limit = 20): string[] {
  const problems: string[] = [];
  for (const error of Value.Errors(schema, value)) {
    problems.push(`${error.path || '/'}: ${error.message}`);
    if (problems.length >= limit) break;
  }
  return problems;
}
