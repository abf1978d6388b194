/**
 * String formats the contract's schemas use. TypeBox's Value.Check fails every string whose `format`
 * it does not know, so whoever checks values with TypeBox (agent, CLI, this package's frame checks)
 * ensures them first; the server's ajv knows them through ajv-formats.
 */
import { FormatRegistry } from '@sinclair/typebox';

/**
 * RFC 3339 `date-time` (section 5.6; the `T` may be lower case or, as section 5.6's note and
 * ajv-formats allow, a space), and it must name a real instant.
 */
const RFC3339_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** True for an RFC 3339 date-time that names a real instant. */
export function isDateTime(value: string): boolean {
  return RFC3339_DATE_TIME.test(value) && !Number.isNaN(Date.parse(value));
}

/** Registers the contract's formats with TypeBox. Idempotent: any caller may ensure it. */
export function ensureFormats(): void {
  if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', isDateTime);
}
