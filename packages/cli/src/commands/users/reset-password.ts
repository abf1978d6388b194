import type { Command } from 'commander';
import { nonEmptyArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { createLogger } from '../../process/logger.js';
import { readSecretFromStdin } from '../../stdin.js';

interface ResetOptions {
  dataDir?: string;
  database?: string;
  config?: string;
  passwordStdin?: boolean;
}

/**
 * `users reset-password NAME --data-dir D`: works on the server's database directly, with the
 * server stopped (it takes the data directory's lock), for when no admin password is known.
 */
export function registerUserResetPassword(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('reset-password')
    .description(
      "set a user's password directly in the server's database (offline: the server must be stopped); prints a generated one",
    )
    .argument('<username>', 'the user, e.g. admin', nonEmptyArg)
    .option('--data-dir <dir>', "the server's data directory (as given to flotilla server / up)")
    .option('--database <url>', 'sqlite:PATH or postgres://… (default: SQLite in the data dir)')
    .option('--config <file>', "the server's YAML configuration file (default: $FLOTILLA_CONFIG)")
    .option('--password-stdin', 'read the new password from stdin instead of generating one')
    .action(async (username: string, opts: ResetOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const { resolveServerConfig, resetPasswordOffline } = await import('@flotilla/server');
      const config = resolveServerConfig({
        flags: {
          ...(opts.config !== undefined && { config: opts.config }),
          ...(opts.dataDir !== undefined && { dataDir: opts.dataDir }),
          ...(opts.database !== undefined && { database: opts.database }),
        },
        // The admin password variable is for bootstrapping only; it has no say here.
        env: { ...io.env, FLOTILLA_ADMIN_PASSWORD: undefined },
      });
      const password = opts.passwordStdin ? await readSecretFromStdin(io.stdin) : undefined;
      const logger = await createLogger({
        level: 'warn',
        format: 'json',
        destination: io.stderr,
        color: false,
      });
      const result = await resetPasswordOffline(config, { username, password }, logger);
      ctx.out.result({ user: result.user, password: result.generatedPassword }, () => {
        ctx.out.line(
          `reset the password of ${result.user.username} (${result.user.role}) in ${config.dataDir}`,
        );
        if (result.generatedPassword !== null) {
          ctx.out.line(`new password: ${result.generatedPassword}`);
          ctx.out.warn(
            'shown only now: log in with `flotilla login --user ' +
              result.user.username +
              ' --password-stdin`',
          );
        }
      });
    });
  examples(cmd, [
    'flotilla users reset-password admin --data-dir ~/.local/share/flotilla/up/server',
    'echo "$NEW_PASSWORD" | flotilla users reset-password alice --data-dir /var/lib/flotilla --password-stdin',
    'flotilla users reset-password admin --database postgres://flotilla@db.internal/flotilla --data-dir /var/lib/flotilla',
  ]);
}
