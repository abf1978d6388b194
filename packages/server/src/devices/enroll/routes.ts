/** `POST enroll/nonce` and `POST enroll` (unauthenticated: the proof is in the request). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { DeviceRoutes, EnrollNonceResponse, EnrollRequest, EnrollResponse } from '@flotilla/protocol';
import { addressKey } from '../../http/connections.js';
import { sourceAddress } from '../../http/source-address.js';
import { issueNonce } from '../nonces.js';
import type { DeviceRuntime } from '../runtime.js';
import { NonceBudget } from './nonce-budget.js';
import { enrollDevice } from './service.js';

export function registerEnrollRoutes(
  base: FastifyInstance,
  rt: DeviceRuntime,
  budget = new NonceBudget(),
): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['device'];
  const { ctx } = rt;

  app.post(
    DeviceRoutes.enrollNonce,
    {
      schema: {
        summary: 'A single-use nonce to sign for enrollment',
        description:
          'Limited per address, then by a server-wide budget of live nonces: 429 FLT_RATE_LIMITED with Retry-After.',
        tags,
        response: { 200: EnrollNonceResponse },
      },
    },
    async (request) => {
      // Per address first, so that one client cannot spend the server-wide budget for everyone.
      await ctx.limits.enrollNonce.take(
        addressKey(sourceAddress(request)),
        'too many enrollment nonces for this address',
      );
      const now = ctx.clock.now();
      budget.take(now.getTime(), now.getTime() + ctx.config.nonceTtlMs);
      return issueNonce(ctx.db, 'enroll', null, now, ctx.config.nonceTtlMs);
    },
  );

  app.post(
    DeviceRoutes.enroll,
    {
      schema: {
        summary: 'Enroll a device: proof of key possession plus a registration key',
        description: '201 for a new device, 200 when this public key was already enrolled (idempotent).',
        tags,
        body: EnrollRequest,
        response: { 200: EnrollResponse, 201: EnrollResponse },
      },
    },
    async (request, reply) => {
      const { created, ...body } = await enrollDevice(rt, request.body, sourceAddress(request));
      return reply.status(created ? 201 : 200).send(body);
    },
  );
}
