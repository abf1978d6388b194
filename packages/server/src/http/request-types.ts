import type { Principal } from '../context.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hooks: the operator (or, on device routes, the device) making the request. */
    principal: Principal | null;
  }
}
