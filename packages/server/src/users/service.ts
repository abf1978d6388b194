/** Operator accounts: create, read, update, delete, with the last-admin guard. No HTTP here. */
import { FlotillaError } from '@flotilla/protocol';
import { randomId } from '@flotilla/node-kit';
import type { CreateUserRequest, Role, UpdateUserRequest, User } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db, ServerContext } from '../context.js';
import type { UsersTable } from '../db/schema.js';
import { hashPassword } from '../auth/passwords.js';
import { isUniqueViolation } from '../db/errors.js';

export interface Actor {
  userId: string;
  sourceIp: string | null;
}

export function toUser(row: Selectable<UsersTable>): User {
  return {
    id: row.id,
    username: row.username,
    role: row.role,
    disabled: row.disabled !== 0,
    createdAt: row.created_at,
  };
}

export async function listUsers(ctx: ServerContext): Promise<User[]> {
  const rows = await ctx.db.selectFrom('users').selectAll().orderBy('username').execute();
  return rows.map(toUser);
}

export async function getUser(
  ctx: ServerContext,
  id: string,
  db: Db = ctx.db,
): Promise<Selectable<UsersTable>> {
  const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new FlotillaError('FLT_NOT_FOUND', `no user with id ${id}`);
  return row;
}

/** Inserts a user; FLT_CONFLICT when the username is taken. Does not audit (callers do). */
export async function insertUser(
  ctx: ServerContext,
  input: { username: string; password: string; role: Role },
  db: Db = ctx.db,
): Promise<User> {
  const passwordHash = await hashPassword(input.password);
  const taken = await db
    .selectFrom('users')
    .select('id')
    .where('username', '=', input.username)
    .executeTakeFirst();
  if (taken) throw new FlotillaError('FLT_CONFLICT', `the username ${input.username} is taken`);
  const row = {
    id: randomId('usr_'),
    username: input.username,
    password_hash: passwordHash,
    role: input.role,
    disabled: 0,
    created_at: ctx.clock.now().toISOString(),
  };
  try {
    await db.insertInto('users').values(row).execute();
  } catch (e) {
    // Two concurrent creations of one name: the unique index decides.
    if (isUniqueViolation(e))
      throw new FlotillaError('FLT_CONFLICT', `the username ${input.username} is taken`, { cause: e });
    throw e;
  }
  return toUser(row);
}

export async function createUser(ctx: ServerContext, input: CreateUserRequest, actor: Actor): Promise<User> {
  return ctx.db.transaction().execute(async (trx) => {
    const user = await insertUser(ctx, input, trx);
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: actor.userId,
        action: 'user.create',
        subjectType: 'user',
        subjectId: user.id,
        sourceIp: actor.sourceIp,
        details: { username: user.username, role: user.role },
      },
      trx,
    );
    return user;
  });
}

/**
 * Throws FLT_CONFLICT when removing `userId` from the active admins would leave none. On
 * PostgreSQL the admin rows are locked so two concurrent demotions cannot both pass.
 */
async function guardLastAdmin(ctx: ServerContext, trx: Db, userId: string, what: string): Promise<void> {
  let query = trx.selectFrom('users').select('id').where('role', '=', 'admin').where('disabled', '=', 0);
  if (ctx.dialect === 'postgres') query = query.forUpdate();
  const admins = await query.execute();
  if (admins.every((a) => a.id === userId)) {
    throw new FlotillaError(
      'FLT_CONFLICT',
      `cannot ${what} the last active admin; make another user admin first`,
    );
  }
}

export async function updateUser(
  ctx: ServerContext,
  id: string,
  patch: UpdateUserRequest,
  actor: Actor,
): Promise<User> {
  const passwordHash = patch.password === undefined ? undefined : await hashPassword(patch.password);
  return ctx.db.transaction().execute(async (trx) => {
    const before = await getUser(ctx, id, trx);
    const losesAdmin =
      before.role === 'admin' &&
      before.disabled === 0 &&
      ((patch.role !== undefined && patch.role !== 'admin') || patch.disabled === true);
    if (losesAdmin) await guardLastAdmin(ctx, trx, id, patch.disabled === true ? 'disable' : 'demote');
    const changes: Partial<UsersTable> = {};
    if (patch.role !== undefined) changes.role = patch.role;
    if (patch.disabled !== undefined) changes.disabled = patch.disabled ? 1 : 0;
    if (passwordHash !== undefined) changes.password_hash = passwordHash;
    await trx.updateTable('users').set(changes).where('id', '=', id).execute();
    // A new password or a disabled account ends every web session at once.
    if (passwordHash !== undefined || patch.disabled === true) {
      await trx.deleteFrom('sessions').where('user_id', '=', id).execute();
    }
    // Disabling revokes the user's API tokens, so that enabling the account again does not bring
    // back credentials that were handed out before (the user creates new ones). Enabling revokes
    // too, for accounts disabled before this rule existed.
    let tokensRevoked: number | undefined;
    if (patch.disabled !== undefined && patch.disabled !== (before.disabled !== 0)) {
      const revoked = await trx
        .updateTable('api_tokens')
        .set({ revoked_at: ctx.clock.now().toISOString() })
        .where('user_id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      tokensRevoked = Number(revoked.numUpdatedRows);
    }
    const details: Record<string, unknown> = {};
    if (patch.role !== undefined) details.role = { from: before.role, to: patch.role };
    if (patch.disabled !== undefined) details.disabled = patch.disabled;
    if (tokensRevoked !== undefined) details.tokensRevoked = tokensRevoked;
    if (passwordHash !== undefined) details.passwordChanged = true;
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: actor.userId,
        action: 'user.update',
        subjectType: 'user',
        subjectId: id,
        sourceIp: actor.sourceIp,
        details,
      },
      trx,
    );
    return toUser(await getUser(ctx, id, trx));
  });
}

export async function deleteUser(ctx: ServerContext, id: string, actor: Actor): Promise<void> {
  await ctx.db.transaction().execute(async (trx) => {
    const before = await getUser(ctx, id, trx);
    if (before.role === 'admin' && before.disabled === 0) await guardLastAdmin(ctx, trx, id, 'delete');
    await trx.deleteFrom('sessions').where('user_id', '=', id).execute();
    await trx.deleteFrom('api_tokens').where('user_id', '=', id).execute();
    await trx.deleteFrom('users').where('id', '=', id).execute();
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: actor.userId,
        action: 'user.delete',
        subjectType: 'user',
        subjectId: id,
        sourceIp: actor.sourceIp,
        details: { username: before.username },
      },
      trx,
    );
  });
}
