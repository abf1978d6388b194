import type { Command } from 'commander';
import { updateUser } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { findUser } from './view.js';

export function registerUserDisable(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('disable')
    .description(
      'disable a user: no login, sessions ended, API tokens revoked (enabling does not restore them)',
    )
    .argument('<user>', 'user id or username')
    .option('--enable', 'enable the user again instead (they log in and create new API tokens)')
    .action(async (who: string, opts: { enable?: boolean }, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const disabled = opts.enable !== true;
      const user = await updateUser(client, (await findUser(client, who)).id, { disabled });
      ctx.out.result(user, () =>
        ctx.out.line(`${user.username} is ${user.disabled ? 'disabled' : 'enabled'}`),
      );
    });
  examples(cmd, ['flotilla users disable alice', 'flotilla users disable alice --enable']);
}
