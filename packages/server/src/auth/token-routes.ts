/** API tokens: every operator manages their own; an admin sees and revokes anyone's. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  CreateTokenRequest,
  CreateTokenResponse,
  Id,
  OperatorRoutes,
  TokenList,
  Type,
} from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { operatorOf, requireRole } from '../http/auth.js';
import { IdParams, NoContent, actorOf } from '../http/route-helpers.js';
import { sourceAddress } from '../http/source-address.js';
import { createToken, listTokens, revokeToken } from './tokens.js';

const TokenListQuery = Type.Object(
  { userId: Type.Optional(Id) },
  { additionalProperties: false, description: "userId: admins only, one user's tokens" },
);

export function registerTokenRoutes(base: FastifyInstance, ctx: ServerContext): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const viewer = requireRole('viewer');

  app.post(
    OperatorRoutes.tokens,
    {
      schema: {
        summary: 'Create an API token for yourself (the secret is shown once)',
        tags: ['tokens'],
        body: CreateTokenRequest,
        response: { 201: CreateTokenResponse },
      },
      preHandler: viewer,
    },
    async (request, reply) => {
      const created = await createToken(ctx, request.body, operatorOf(request), sourceAddress(request));
      return reply.status(201).send(created);
    },
  );

  app.get(
    OperatorRoutes.tokens,
    {
      schema: {
        summary: 'List live API tokens (yours; an admin sees all)',
        tags: ['tokens'],
        querystring: TokenListQuery,
        response: { 200: TokenList },
      },
      preHandler: viewer,
    },
    async (request) => ({ items: await listTokens(ctx, operatorOf(request), request.query.userId) }),
  );

  app.delete(
    OperatorRoutes.token,
    {
      schema: {
        summary: 'Revoke an API token',
        tags: ['tokens'],
        params: IdParams,
        response: { 204: NoContent },
      },
      preHandler: viewer,
    },
    async (request, reply) => {
      await revokeToken(ctx, request.params.id, operatorOf(request), actorOf(request));
      return reply.status(204).send(null);
    },
  );
}
