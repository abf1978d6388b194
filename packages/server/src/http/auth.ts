/**
 * Operator authentication and authorization for every route: an `onRequest` hook that sets
 * `request.principal`, the CSRF rule for cookie sessions, and `requireRole` for handlers.
 */
import type { FastifyInstance, FastifyRequest, preHandlerHookHandler } from 'fastify';
import { FlotillaError, ROLE_RANK, SESSION_COOKIE } from '@flotilla/protocol';
import { SECRET_PREFIX } from '@flotilla/node-kit';
import type { Role } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { principalFromApiToken, principalFromSession } from '../auth/credentials.js';
import type { UserPrincipal } from '../auth/credentials.js';
import './request-types.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function installOperatorAuth(app: FastifyInstance, ctx: ServerContext): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request) => {
    request.principal = null;
    const header = request.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer +([^\s]+) *$/i.exec(header);
      if (!m?.[1])
        throw new FlotillaError('FLT_TOKEN_INVALID', 'the Authorization header must be "Bearer <token>"');
      // Device tokens are authenticated by the device gateway's own preHandler.
      if (m[1].startsWith(SECRET_PREFIX.deviceToken)) return;
      request.principal = await principalFromApiToken(ctx, m[1]);
      return;
    }
    const cookie = request.cookies[SESSION_COOKIE];
    if (cookie === undefined) return;
    const principal = await principalFromSession(ctx, cookie);
    if (principal === null) return;
    checkCsrf(request);
    request.principal = principal;
  });
}

/**
 * A browser sends cookies on cross-site requests too. Requiring `application/json` forces a CORS
 * preflight (which this server never grants) for any cross-site write, and a present Origin
 * header must name this very host.
 */
function checkCsrf(request: FastifyRequest): void {
  if (SAFE_METHODS.has(request.method)) return;
  const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new FlotillaError(
      'FLT_CSRF',
      'a cookie-authenticated write must have Content-Type: application/json',
    );
  }
  const origin = request.headers.origin;
  if (origin === undefined) return;
  let originHost: string | null = null;
  try {
    originHost = origin === 'null' ? null : new URL(origin).host;
  } catch {
    originHost = null;
  }
  if (originHost === null || originHost.toLowerCase() !== (request.headers.host ?? '').toLowerCase()) {
    throw new FlotillaError('FLT_CSRF', 'the request Origin does not match this server');
  }
}

/** The operator making the request; throws FLT_UNAUTHENTICATED when there is none. */
export function operatorOf(request: FastifyRequest): UserPrincipal {
  const p = request.principal;
  if (p?.kind !== 'user') throw new FlotillaError('FLT_UNAUTHENTICATED', 'sign in or send an API token');
  return p;
}

/** A preHandler admitting operators whose role is at least `role` (admin > deployer > viewer). */
export function requireRole(role: Role): preHandlerHookHandler {
  return function requireRoleHandler(request, _reply, done) {
    const principal = request.principal;
    if (principal?.kind !== 'user') {
      done(new FlotillaError('FLT_UNAUTHENTICATED', 'sign in or send an API token'));
    } else if (ROLE_RANK[principal.role] < ROLE_RANK[role]) {
      done(
        new FlotillaError('FLT_FORBIDDEN', `this action needs the ${role} role (you are ${principal.role})`),
      );
    } else done();
  };
}
