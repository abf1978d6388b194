/**
 * Resolving operator credentials (API tokens and session cookies) to a principal. Both secrets are
 * stored only as their SHA-256; a disabled user's credentials stop working at once because the
 * user row is read on every request.
 */
import { FlotillaError } from '@flotilla/protocol';
import { SECRET_PREFIX, hashSecret } from '@flotilla/node-kit';
import type { ServerContext, Principal } from '../context.js';

export type UserPrincipal = Extract<Principal, { kind: 'user' }>;

/** How stale `api_tokens.last_used_at` may get before a request writes it again. */
const LAST_USED_RESOLUTION_MS = 60_000;

export async function principalFromApiToken(ctx: ServerContext, secret: string): Promise<UserPrincipal> {
  if (!secret.startsWith(SECRET_PREFIX.apiToken)) {
    throw new FlotillaError('FLT_TOKEN_INVALID', 'the bearer token is not a Flotilla API token');
  }
  const row = await ctx.db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select([
      'api_tokens.id as tokenId',
      'api_tokens.expires_at',
      'api_tokens.revoked_at',
      'api_tokens.last_used_at',
      'users.id as userId',
      'users.username',
      'users.role',
      'users.disabled',
    ])
    .where('api_tokens.token_hash', '=', hashSecret(secret))
    .executeTakeFirst();
  if (!row || row.revoked_at !== null || row.disabled !== 0) {
    throw new FlotillaError(
      'FLT_TOKEN_INVALID',
      'the API token is unknown, revoked, or its user is disabled',
    );
  }
  const now = ctx.clock.now();
  if (row.expires_at !== null && row.expires_at <= now.toISOString()) {
    throw new FlotillaError('FLT_TOKEN_EXPIRED', 'the API token has expired');
  }
  if (row.last_used_at === null || Date.parse(row.last_used_at) <= now.getTime() - LAST_USED_RESOLUTION_MS) {
    await ctx.db
      .updateTable('api_tokens')
      .set({ last_used_at: now.toISOString() })
      .where('id', '=', row.tokenId)
      .execute();
  }
  return { kind: 'user', userId: row.userId, username: row.username, role: row.role, via: 'token' };
}

/** The session's principal, or null when the cookie is unknown, expired, or its user disabled. */
export async function principalFromSession(
  ctx: ServerContext,
  secret: string,
): Promise<UserPrincipal | null> {
  if (!secret.startsWith(SECRET_PREFIX.sessionToken)) return null;
  const row = await ctx.db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.expires_at', 'users.id as userId', 'users.username', 'users.role', 'users.disabled'])
    .where('sessions.token_hash', '=', hashSecret(secret))
    .executeTakeFirst();
  if (!row || row.disabled !== 0 || row.expires_at <= ctx.clock.now().toISOString()) return null;
  return { kind: 'user', userId: row.userId, username: row.username, role: row.role, via: 'session' };
}
