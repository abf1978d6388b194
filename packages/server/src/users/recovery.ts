/**
 * Getting back in when no admin password is known: finding a bootstrap admin nobody ever signed in
 * as (its generated password was lost, e.g. a first start that failed after creating it), and
 * resetting a user's password offline, on the database, with no server running
 * (`flotilla users reset-password NAME --data-dir …`).
 */
import { FlotillaError } from '@flotilla/protocol';
import { lockDataDir, randomSecret } from '@flotilla/node-kit';
import type { User } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { createAuditRecorder } from '../audit/recorder.js';
import { hashPassword } from '../auth/passwords.js';
import { join } from 'node:path';
import { redactDatabaseUrl } from '../config.js';
import type { ServerConfig } from '../config.js';
import type { Db } from '../context.js';
import { openDatabase } from '../db/open.js';
import { toUser } from './service.js';

/**
 * The username of the admin the server created at its first start with a generated password, when
 * nobody has ever signed in as it nor changed its password (so the password may never have been
 * seen); null otherwise.
 */
export async function unclaimedBootstrapAdmin(db: Db): Promise<string | null> {
  const bootstrap = await db
    .selectFrom('audit_log')
    .select(['subject_id', 'details'])
    .where('action', '=', 'user.bootstrap')
    .orderBy('id')
    .executeTakeFirst();
  if (!bootstrap) return null;
  const details =
    bootstrap.details === null ? {} : (JSON.parse(bootstrap.details) as { generated?: unknown });
  if (details.generated === false) return null;
  const user = await db
    .selectFrom('users')
    .select(['username', 'role', 'disabled'])
    .where('id', '=', bootstrap.subject_id)
    .executeTakeFirst();
  if (!user || user.role !== 'admin' || user.disabled !== 0) return null;
  const used = await db
    .selectFrom('audit_log')
    .select('id')
    .where((eb) =>
      eb.or([
        eb.and([eb('action', '=', 'user.login'), eb('actor_id', '=', bootstrap.subject_id)]),
        eb.and([
          eb('action', 'in', ['user.update', 'user.reset_password']),
          eb('subject_id', '=', bootstrap.subject_id),
        ]),
      ]),
    )
    .limit(1)
    .executeTakeFirst();
  return used ? null : user.username;
}

/** The command that resets a password offline, for messages. */
export function resetPasswordCommand(
  username: string,
  config: Pick<ServerConfig, 'dataDir' | 'database'>,
): string {
  const defaultDatabase = `sqlite:${join(config.dataDir, 'flotilla.db')}`;
  const database =
    config.database === defaultDatabase ? '' : ` --database ${redactDatabaseUrl(config.database)}`;
  return `flotilla users reset-password ${username} --data-dir ${config.dataDir}${database}`;
}

export interface ResetPasswordResult {
  user: User;
  /** The generated password when none was given; show it once. */
  generatedPassword: string | null;
}

/**
 * Sets a user's password directly in the database (the server must be stopped: the data
 * directory's lock is taken, FLT_DATA_DIR_LOCKED otherwise), ends the user's web sessions and
 * records `user.reset_password` in the audit log. Without `password`, one is generated.
 */
export async function resetPasswordOffline(
  config: ServerConfig,
  input: { username: string; password?: string | undefined },
  log: Logger,
): Promise<ResetPasswordResult> {
  if (input.password !== undefined && (input.password.length < 8 || input.password.length > 1024))
    throw new FlotillaError('FLT_VALIDATION', 'the password must be 8 to 1024 characters');
  const lock = lockDataDir(config.dataDir, 'flotilla users reset-password');
  try {
    const database = await openDatabase(config.database, log);
    try {
      const generatedPassword = input.password === undefined ? randomSecret('', 18) : null;
      const passwordHash = await hashPassword(input.password ?? generatedPassword ?? '');
      const audit = createAuditRecorder(database.db, { now: () => new Date() });
      const user = await database.db.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom('users')
          .selectAll()
          .where('username', '=', input.username)
          .executeTakeFirst();
        if (!row)
          throw new FlotillaError('FLT_NOT_FOUND', `no user ${input.username} in ${config.dataDir}`, {
            details: { username: input.username },
          });
        await trx
          .updateTable('users')
          .set({ password_hash: passwordHash })
          .where('id', '=', row.id)
          .execute();
        await trx.deleteFrom('sessions').where('user_id', '=', row.id).execute();
        await audit.record(
          {
            actorType: 'system',
            actorId: 'offline',
            action: 'user.reset_password',
            subjectType: 'user',
            subjectId: row.id,
            details: { username: row.username, generated: generatedPassword !== null },
          },
          trx,
        );
        return toUser(row);
      });
      return { user, generatedPassword };
    } finally {
      await database.close();
    }
  } finally {
    lock.release();
  }
}
