import type { Command } from 'commander';
import type { Role } from '@flotilla/protocol';
import { createUser } from '../../api/operator.js';
import { nonEmptyArg, roleArg, ROLES } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { readSecretFromStdin } from '../../stdin.js';
import { USER_HEAD, userRow } from './view.js';

export function registerUserCreate(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('create')
    .description('create an operator account')
    .requiredOption('--username <name>', 'login name', nonEmptyArg)
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`, roleArg)
    .option('--password-stdin', "read the new user's password from stdin (required)")
    .action(async (opts: { username: string; role: Role; passwordStdin?: boolean }, command: Command) => {
      if (!opts.passwordStdin) usageError(command, 'pass the password on stdin with --password-stdin');
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const password = await readSecretFromStdin(io.stdin);
      const user = await createUser(client, { username: opts.username, role: opts.role, password });
      ctx.out.result(user, () => ctx.out.table(USER_HEAD, [userRow(user)]));
    });
  examples(cmd, [
    'echo "$NEW_PASSWORD" | flotilla users create --username alice --role deployer --password-stdin',
  ]);
}
