/** User administration (admin only). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { CreateUserRequest, OperatorRoutes, UpdateUserRequest, User, UserList } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { requireRole } from '../http/auth.js';
import { IdParams, NoContent, actorOf } from '../http/route-helpers.js';
import { createUser, deleteUser, getUser, listUsers, toUser, updateUser } from './service.js';

export function registerUserRoutes(base: FastifyInstance, ctx: ServerContext): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const admin = requireRole('admin');
  const tags = ['users'];

  app.post(
    OperatorRoutes.users,
    {
      schema: {
        summary: 'Create an operator account',
        tags,
        body: CreateUserRequest,
        response: { 201: User },
      },
      preHandler: admin,
    },
    async (request, reply) => reply.status(201).send(await createUser(ctx, request.body, actorOf(request))),
  );

  app.get(
    OperatorRoutes.users,
    { schema: { summary: 'List operator accounts', tags, response: { 200: UserList } }, preHandler: admin },
    async () => ({ items: await listUsers(ctx) }),
  );

  app.get(
    OperatorRoutes.user,
    {
      schema: { summary: 'One operator account', tags, params: IdParams, response: { 200: User } },
      preHandler: admin,
    },
    async (request) => toUser(await getUser(ctx, request.params.id)),
  );

  app.patch(
    OperatorRoutes.user,
    {
      schema: {
        summary: 'Change role, password or disabled (never the last admin)',
        tags,
        params: IdParams,
        body: UpdateUserRequest,
        response: { 200: User },
      },
      preHandler: admin,
    },
    async (request) => updateUser(ctx, request.params.id, request.body, actorOf(request)),
  );

  app.delete(
    OperatorRoutes.user,
    {
      schema: {
        summary: 'Delete an operator account (never the last admin)',
        tags,
        params: IdParams,
        response: { 204: NoContent },
      },
      preHandler: admin,
    },
    async (request, reply) => {
      await deleteUser(ctx, request.params.id, actorOf(request));
      return reply.status(204).send(null);
    },
  );
}
