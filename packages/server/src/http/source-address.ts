import type { FastifyRequest } from 'fastify';

/**
 * The client's address for audit and sessions. Fastify applies `trustProxy` (X-Forwarded-For is
 * honoured only when configured); IPv4-mapped IPv6 addresses are shown as plain IPv4.
 */
export function sourceAddress(request: FastifyRequest): string {
  const ip = request.ip;
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice('::ffff:'.length) : ip;
}
