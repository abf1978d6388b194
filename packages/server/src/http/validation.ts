/**
 * Two Ajv instances chosen by the part of the request validated: bodies strictly (no coercion,
 * unknown fields rejected: Fastify's own default would silently strip them), query strings,
 * params and headers with type coercion, since they arrive as text.
 */
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

type JsonSchema = Record<string, unknown>;

function newAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    removeAdditional: false,
    useDefaults: true,
    coerceTypes: coerce ? 'array' : false,
    strict: false,
  });
  addFormats.default(ajv);
  return ajv;
}

/**
 * Object schemas that say nothing about additional properties are closed, so that an unknown
 * field is an error on every route. Members of allOf are left open (closing them would reject
 * the properties of their siblings).
 */
export function closeObjectSchemas(schema: unknown, insideAllOf = false): unknown {
  if (Array.isArray(schema)) return schema.map((s) => closeObjectSchemas(s, insideAllOf));
  if (schema === null || typeof schema !== 'object') return schema;
  const src = schema as JsonSchema;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(src)) {
    if (key === 'allOf') out[key] = (value as unknown[]).map((s) => closeObjectSchemas(s, true));
    else if (key === 'properties' && value && typeof value === 'object') {
      out[key] = Object.fromEntries(
        Object.entries(value as JsonSchema).map(([k, v]) => [k, closeObjectSchemas(v)]),
      );
    } else if (
      ['items', 'anyOf', 'oneOf', 'additionalProperties', 'patternProperties', 'not'].includes(key)
    ) {
      out[key] =
        key === 'patternProperties' && value && typeof value === 'object'
          ? Object.fromEntries(
              Object.entries(value as JsonSchema).map(([k, v]) => [k, closeObjectSchemas(v)]),
            )
          : closeObjectSchemas(value);
    } else out[key] = value;
  }
  const isObject = src.type === 'object' && src.properties !== undefined;
  if (
    isObject &&
    !insideAllOf &&
    src.additionalProperties === undefined &&
    src.unevaluatedProperties === undefined
  ) {
    out.additionalProperties = false;
  }
  return out;
}

export function installValidators(app: FastifyInstance): void {
  const strict = newAjv(false);
  const coercing = newAjv(true);
  // Compiled once per schema object: a schema with an $id may be compiled only once per Ajv.
  const bodies = new WeakMap<object, ValidateFunction>();
  app.setValidatorCompiler<JsonSchema>(({ schema, httpPart }): ValidateFunction => {
    if (httpPart !== 'body') return coercing.compile(schema);
    let validate = bodies.get(schema);
    if (!validate) {
      validate = strict.compile(closeObjectSchemas(schema) as JsonSchema);
      bodies.set(schema, validate);
    }
    return validate;
  });
}
