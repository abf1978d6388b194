import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { ErrorEnvelopeSchema, FLOTILLA_VERSION, SESSION_COOKIE } from '@flotilla/protocol';

const ERROR_REF = { $ref: 'ErrorEnvelope#' };

/**
 * OpenAPI 3 built from the route schemas (`/openapi.json`) and interactive docs (`/docs`). Must be
 * installed before any route, since both hook `onRoute`. Every route with a schema answers its
 * 4xx/5xx with the shared error envelope.
 */
export async function installOpenApi(app: FastifyInstance): Promise<void> {
  app.addSchema(ErrorEnvelopeSchema);
  app.addHook('onRoute', (route) => {
    const schema = route.schema as
      (Record<string, unknown> & { hide?: boolean; response?: Record<string, unknown> }) | undefined;
    if (!schema || schema.hide) return;
    schema.response = { '4xx': ERROR_REF, '5xx': ERROR_REF, ...(schema.response ?? {}) };
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Flotilla control plane',
        version: FLOTILLA_VERSION,
        description:
          'Operator and device API. Errors are always `{ "error": { "code", "message", "details" } }`.',
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'API token `flt_at_…` (operators) or device token `flt_dt_…`',
          },
          cookieAuth: {
            type: 'apiKey',
            in: 'cookie',
            name: SESSION_COOKIE,
            description: 'Web session set by login',
          },
        },
      },
      security: [{ bearerAuth: [] }, { cookieAuth: [] }],
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
}
