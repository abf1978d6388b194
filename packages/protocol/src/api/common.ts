import { Type } from '@sinclair/typebox';
import type { Static, TSchema } from '@sinclair/typebox';

/** Tag and fact names: printable, no spaces, no RSQL operators. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$';
export const LIMITS = {
  tagsPerDevice: 64,
  factsPerDevice: 256,
  factValueChars: 1024,
  factArrayItems: 64,
  filterChars: 4096,
  pageSizeMax: 1000,
  pageSizeDefault: 50,
} as const;

export const Tag = Type.String({ pattern: NAME_PATTERN, description: 'A tag: letters, digits, _ . : / -' });
export const Tags = Type.Array(Tag, { maxItems: LIMITS.tagsPerDevice, uniqueItems: true });

export const FactValue = Type.Union([
  Type.String({ maxLength: LIMITS.factValueChars }),
  Type.Number(),
  Type.Boolean(),
  Type.Array(Type.String({ maxLength: LIMITS.factValueChars }), { maxItems: LIMITS.factArrayItems }),
]);
export type FactValue = Static<typeof FactValue>;
export const Facts = Type.Record(Type.String({ pattern: NAME_PATTERN }), FactValue, {
  maxProperties: LIMITS.factsPerDevice,
  // Keys not matching NAME_PATTERN are refused, not passed through unchecked.
  additionalProperties: false,
  description: 'Inventory facts: name → string, number, boolean or list of strings',
});
export type Facts = Static<typeof Facts>;

export const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339 UTC timestamp' });
export const Id = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' });

export const ErrorEnvelopeSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable error code, e.g. FLT_VALIDATION' }),
      message: Type.String(),
      details: Type.Optional(Type.Unknown()),
    }),
  },
  { $id: 'ErrorEnvelope', description: 'Every error response' },
);

export const Pagination = Type.Object({
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: LIMITS.pageSizeMax, default: LIMITS.pageSizeDefault }),
  ),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
});

export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    total: Type.Integer({ minimum: 0 }),
    limit: Type.Integer(),
    offset: Type.Integer(),
  });
}
