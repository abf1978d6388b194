import type { FastifyRequest } from 'fastify';
import { Id, Type } from '@flotilla/protocol';
import type { Actor } from '../users/service.js';
import { operatorOf } from './auth.js';
import { sourceAddress } from './source-address.js';

export const IdParams = Type.Object({ id: Id }, { additionalProperties: false });
export const NoContent = Type.Null({ description: 'No content' });

/** The operator making the request, as recorded in the audit log. */
export function actorOf(request: FastifyRequest): Actor {
  return { userId: operatorOf(request).userId, sourceIp: sourceAddress(request) };
}

/** The operator making the request with their username, as releases, secrets and deployments record it. */
export function namedActorOf(request: FastifyRequest): Actor & { username: string } {
  const op = operatorOf(request);
  return { userId: op.userId, username: op.username, sourceIp: sourceAddress(request) };
}
