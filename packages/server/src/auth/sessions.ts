/** Password login and web sessions. Failures never say whether the username or password was wrong. */
import { FlotillaError } from '@flotilla/protocol';
import { SECRET_PREFIX, hashSecret, randomSecret } from '@flotilla/node-kit';
import type { LoginRequest, User } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { toUser } from '../users/service.js';
import { decoyHash, verifyPassword } from './passwords.js';

export interface NewSession {
  secret: string;
  user: User;
  expiresAt: string;
}

export async function login(ctx: ServerContext, input: LoginRequest, sourceIp: string): Promise<NewSession> {
  const guard = ctx.limits.login;
  await guard.check(input.username, sourceIp);
  const row = await ctx.db
    .selectFrom('users')
    .selectAll()
    .where('username', '=', input.username)
    .executeTakeFirst();
  const matches = await verifyPassword(input.password, row?.password_hash ?? (await decoyHash()));
  if (!row || !matches || row.disabled !== 0) {
    await guard.failed(input.username, sourceIp);
    await ctx.audit.record({
      actorType: 'user',
      actorId: row?.id ?? input.username,
      action: 'user.login_failed',
      subjectType: 'user',
      subjectId: row?.id ?? input.username,
      sourceIp,
      details: { username: input.username },
    });
    throw new FlotillaError('FLT_BAD_CREDENTIALS', 'wrong username or password');
  }
  const now = ctx.clock.now();
  const secret = randomSecret(SECRET_PREFIX.sessionToken);
  const expiresAt = new Date(now.getTime() + ctx.config.sessionTtlMs).toISOString();
  await ctx.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('sessions').where('expires_at', '<=', now.toISOString()).execute();
    await trx
      .insertInto('sessions')
      .values({
        token_hash: hashSecret(secret),
        user_id: row.id,
        created_at: now.toISOString(),
        expires_at: expiresAt,
        source_ip: sourceIp,
      })
      .execute();
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: row.id,
        action: 'user.login',
        subjectType: 'user',
        subjectId: row.id,
        sourceIp,
      },
      trx,
    );
  });
  await guard.succeeded(input.username, sourceIp);
  return { secret, user: toUser(row), expiresAt };
}

/** Ends the session named by the cookie secret; true when one existed. */
export async function logout(ctx: ServerContext, secret: string, sourceIp: string): Promise<boolean> {
  return ctx.db.transaction().execute(async (trx) => {
    const session = await trx
      .selectFrom('sessions')
      .select('user_id')
      .where('token_hash', '=', hashSecret(secret))
      .executeTakeFirst();
    if (!session) return false;
    await trx.deleteFrom('sessions').where('token_hash', '=', hashSecret(secret)).execute();
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: session.user_id,
        action: 'user.logout',
        subjectType: 'user',
        subjectId: session.user_id,
        sourceIp,
      },
      trx,
    );
    return true;
  });
}
