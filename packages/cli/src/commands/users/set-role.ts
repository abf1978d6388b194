import type { Command } from 'commander';
import type { Role } from '@flotilla/protocol';
import { updateUser } from '../../api/operator.js';
import { roleArg, ROLES } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { findUser } from './view.js';

export function registerUserSetRole(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('set-role')
    .description("change a user's role")
    .argument('<user>', 'user id or username')
    .argument('<role>', `one of ${ROLES.join(', ')}`, roleArg)
    .action(async (who: string, role: Role, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const user = await updateUser(client, (await findUser(client, who)).id, { role });
      ctx.out.result(user, () => ctx.out.line(`${user.username} is now ${user.role}`));
    });
  examples(cmd, ['flotilla users set-role alice admin']);
}
