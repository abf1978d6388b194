/** Registration keys: create and revoke (admin), list and show (deployer and up). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  CreateRegistrationKeyRequest,
  CreateRegistrationKeyResponse,
  OperatorRoutes,
  RegistrationKey,
  RegistrationKeyList,
} from '@flotilla/protocol';
import type { ServerContext } from '../../context.js';
import { requireRole } from '../../http/auth.js';
import { IdParams, actorOf } from '../../http/route-helpers.js';
import {
  createRegistrationKey,
  getRegistrationKeyRow,
  listRegistrationKeys,
  revokeRegistrationKey,
  toRegistrationKey,
} from './service.js';

export function registerRegistrationKeyRoutes(base: FastifyInstance, ctx: ServerContext): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['registration keys'];

  app.post(
    OperatorRoutes.registrationKeys,
    {
      schema: {
        summary: 'Create a registration key (its secret is shown once, in this response)',
        tags,
        body: CreateRegistrationKeyRequest,
        response: { 201: CreateRegistrationKeyResponse },
      },
      preHandler: requireRole('admin'),
    },
    async (request, reply) =>
      reply.status(201).send(await createRegistrationKey(ctx, request.body, actorOf(request))),
  );

  app.get(
    OperatorRoutes.registrationKeys,
    {
      schema: {
        summary: 'List registration keys with their state',
        tags,
        response: { 200: RegistrationKeyList },
      },
      preHandler: requireRole('deployer'),
    },
    async () => ({ items: await listRegistrationKeys(ctx) }),
  );

  app.get(
    OperatorRoutes.registrationKey,
    {
      schema: { summary: 'One registration key', tags, params: IdParams, response: { 200: RegistrationKey } },
      preHandler: requireRole('deployer'),
    },
    async (request) =>
      toRegistrationKey(await getRegistrationKeyRow(ctx.db, request.params.id), ctx.clock.now()),
  );

  app.post(
    OperatorRoutes.registrationKeyRevoke,
    {
      schema: {
        summary: 'Revoke a registration key (devices already enrolled keep working)',
        tags,
        params: IdParams,
        response: { 200: RegistrationKey },
      },
      preHandler: requireRole('admin'),
    },
    async (request) => revokeRegistrationKey(ctx, request.params.id, actorOf(request)),
  );
}
