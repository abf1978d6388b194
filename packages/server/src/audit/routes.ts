import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AuditList, AuditQuery, OperatorRoutes } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { requireRole } from '../http/auth.js';
import { queryAudit } from './query.js';

export function registerAuditRoutes(base: FastifyInstance, ctx: ServerContext): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    OperatorRoutes.audit,
    {
      schema: {
        summary: 'The audit log, newest first; page with nextBefore',
        tags: ['audit'],
        querystring: AuditQuery,
        response: { 200: AuditList },
      },
      preHandler: requireRole('admin'),
    },
    async (request) => queryAudit(ctx, request.query),
  );
}
