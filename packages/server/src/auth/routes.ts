/** Login, logout and "who am I" for operators. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { LoginRequest, LoginResponse, MeResponse, OperatorRoutes, SESSION_COOKIE } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { operatorOf, requireRole } from '../http/auth.js';
import { NoContent } from '../http/route-helpers.js';
import { sourceAddress } from '../http/source-address.js';
import { getUser, toUser } from '../users/service.js';
import { login, logout } from './sessions.js';

export function registerAuthRoutes(base: FastifyInstance, ctx: ServerContext): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const secureCookie = ctx.config.publicUrl?.startsWith('https://') ?? false;

  app.post(
    OperatorRoutes.login,
    {
      schema: {
        summary: 'Sign in with a password; sets the session cookie',
        description:
          'After repeated failures for one user name from one address (or many from one address) the answer is 429 FLT_RATE_LIMITED with Retry-After, even for the right password.',
        tags: ['auth'],
        security: [],
        body: LoginRequest,
        response: { 200: LoginResponse },
      },
    },
    async (request, reply) => {
      const session = await login(ctx, request.body, sourceAddress(request));
      reply.setCookie(SESSION_COOKIE, session.secret, {
        httpOnly: true,
        sameSite: 'strict',
        path: '/',
        secure: secureCookie,
        expires: new Date(session.expiresAt),
      });
      return { user: session.user, expiresAt: session.expiresAt };
    },
  );

  app.post(
    OperatorRoutes.logout,
    {
      schema: {
        summary: 'End the web session and clear its cookie',
        tags: ['auth'],
        response: { 204: NoContent },
      },
    },
    async (request, reply) => {
      const secret = request.cookies[SESSION_COOKIE];
      if (secret !== undefined && request.principal?.kind === 'user' && request.principal.via === 'session') {
        await logout(ctx, secret, sourceAddress(request));
      }
      reply.clearCookie(SESSION_COOKIE, {
        path: '/',
        httpOnly: true,
        sameSite: 'strict',
        secure: secureCookie,
      });
      return reply.status(204).send(null);
    },
  );

  app.get(
    OperatorRoutes.me,
    {
      schema: { summary: 'The signed-in operator', tags: ['auth'], response: { 200: MeResponse } },
      preHandler: requireRole('viewer'),
    },
    async (request) => {
      const principal = operatorOf(request);
      return { user: toUser(await getUser(ctx, principal.userId)), via: principal.via };
    },
  );
}
