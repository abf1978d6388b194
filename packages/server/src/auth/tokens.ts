/** Operator API tokens: the secret is shown once at creation and stored only as its SHA-256. */
import { FlotillaError, parseDurationMs } from '@flotilla/protocol';
import { SECRET_PREFIX, hashSecret, randomId, randomSecret } from '@flotilla/node-kit';
import type { ApiToken, CreateTokenRequest, CreateTokenResponse } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { ServerContext } from '../context.js';
import type { ApiTokensTable } from '../db/schema.js';
import type { Actor } from '../users/service.js';
import type { UserPrincipal } from './credentials.js';

/** The longest lifetime a token may be given (10 years); tokens without `expiresIn` never expire. */
const MAX_TOKEN_TTL_MS = 10 * 365 * 86_400_000;

function toApiToken(row: Selectable<ApiTokensTable>): ApiToken {
  return {
    id: row.id,
    name: row.name,
    userId: row.user_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
  };
}

export async function createToken(
  ctx: ServerContext,
  input: CreateTokenRequest,
  owner: UserPrincipal,
  sourceIp: string | null,
): Promise<CreateTokenResponse> {
  const now = ctx.clock.now();
  let expiresAt: string | null = null;
  if (input.expiresIn !== undefined) {
    const ttl = parseDurationMs(input.expiresIn);
    if (ttl < 1000 || ttl > MAX_TOKEN_TTL_MS) {
      throw new FlotillaError('FLT_VALIDATION', 'expiresIn must be between 1s and 3650d', {
        details: { problems: ['body.expiresIn: out of range'] },
      });
    }
    expiresAt = new Date(now.getTime() + ttl).toISOString();
  }
  const secret = randomSecret(SECRET_PREFIX.apiToken);
  const row: Selectable<ApiTokensTable> = {
    id: randomId('tok_'),
    user_id: owner.userId,
    name: input.name,
    token_hash: hashSecret(secret),
    created_at: now.toISOString(),
    expires_at: expiresAt,
    last_used_at: null,
    revoked_at: null,
  };
  await ctx.db.transaction().execute(async (trx) => {
    await trx.insertInto('api_tokens').values(row).execute();
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: owner.userId,
        action: 'token.create',
        subjectType: 'token',
        subjectId: row.id,
        sourceIp,
        details: { name: row.name, expiresAt },
      },
      trx,
    );
  });
  return { token: toApiToken(row), secret };
}

/** Live (unrevoked) tokens: the caller's own, or, for an admin, everyone's (optionally one user's). */
export async function listTokens(
  ctx: ServerContext,
  viewer: UserPrincipal,
  userId?: string,
): Promise<ApiToken[]> {
  let query = ctx.db.selectFrom('api_tokens').selectAll().where('revoked_at', 'is', null);
  if (viewer.role !== 'admin') query = query.where('user_id', '=', viewer.userId);
  else if (userId !== undefined) query = query.where('user_id', '=', userId);
  const rows = await query.orderBy('created_at').orderBy('id').execute();
  return rows.map(toApiToken);
}

/** Revokes a token the caller owns (any token, for an admin); others' tokens look absent. */
export async function revokeToken(
  ctx: ServerContext,
  id: string,
  viewer: UserPrincipal,
  actor: Actor,
): Promise<void> {
  await ctx.db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('api_tokens')
      .select(['id', 'user_id', 'name'])
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row || (viewer.role !== 'admin' && row.user_id !== viewer.userId)) {
      throw new FlotillaError('FLT_NOT_FOUND', `no API token with id ${id}`);
    }
    await trx
      .updateTable('api_tokens')
      .set({ revoked_at: ctx.clock.now().toISOString() })
      .where('id', '=', id)
      .execute();
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: actor.userId,
        action: 'token.revoke',
        subjectType: 'token',
        subjectId: id,
        sourceIp: actor.sourceIp,
        details: { name: row.name, ownerId: row.user_id },
      },
      trx,
    );
  });
}
