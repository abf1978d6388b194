import { FlotillaError } from '@flotilla/protocol';

/**
 * PostgreSQL text cannot hold NUL (U+0000); JSON can carry it. Refusing it up front keeps both
 * dialects alike and turns what would be a database error into FLT_VALIDATION.
 */
export function assertStorableText(value: string, field: string): void {
  if (value.includes('\u0000')) {
    throw new FlotillaError('FLT_VALIDATION', `${field} must not contain NUL characters`, {
      details: { field },
    });
  }
}
