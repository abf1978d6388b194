/**
 * Validation of wire and config values with TypeBox (the library the protocol's schemas are written
 * in), so the agent checks exactly the contract the server implements.
 */
import { ensureFormats } from '@flotilla/protocol';
import type { Static, TSchema } from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';

export function matches<T extends TSchema>(schema: T, value: unknown): value is Static<T> {
  ensureFormats();
  return Value.Check(schema, value);
}

/** Human-readable problems (`/path: message`), at most `limit` of them. */
export function schemaProblems(schema: TSchema, value: unknown, limit = 20): string[] {
  ensureFormats();
  const problems: string[] = [];
  for (const error of Value.Errors(schema, value)) {
    problems.push(`${error.path || '/'}: ${error.message}`);
    if (problems.length >= limit) break;
  }
  return problems;
}
