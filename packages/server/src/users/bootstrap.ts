import { FlotillaError } from '@flotilla/protocol';
import { randomSecret } from '@flotilla/node-kit';
import type { ServerContext } from '../context.js';
import { insertUser } from './service.js';

/**
 * On a database with no user, creates the first admin (`adminUsername`) with the password from
 * FLOTILLA_ADMIN_PASSWORD, or a generated one. Returns the generated password (to be shown once
 * by the caller, never logged), or null when no password was generated.
 */
export async function ensureBootstrapAdmin(ctx: ServerContext): Promise<string | null> {
  const existing = await ctx.db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (existing) return null;
  const generated = ctx.config.adminPassword === null ? randomSecret('', 18) : null;
  const password = ctx.config.adminPassword ?? generated ?? '';
  try {
    const user = await ctx.db.transaction().execute(async (trx) => {
      const created = await insertUser(
        ctx,
        { username: ctx.config.adminUsername, password, role: 'admin' },
        trx,
      );
      await ctx.audit.record(
        {
          actorType: 'system',
          actorId: 'bootstrap',
          action: 'user.bootstrap',
          subjectType: 'user',
          subjectId: created.id,
          details: { username: created.username, generated: generated !== null },
        },
        trx,
      );
      return created;
    });
    ctx.log.info({ username: user.username }, 'created the first admin account');
    return generated;
  } catch (e) {
    // Another replica bootstrapped the same database first.
    if (e instanceof FlotillaError && e.code === 'FLT_CONFLICT') return null;
    throw e;
  }
}
