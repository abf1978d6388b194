import type { Command } from 'commander';
import { revokeToken } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

export function registerTokenRevoke(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('revoke')
    .description('revoke an API token: it stops working at once')
    .argument('<id>', 'the token id (see `flotilla tokens ls`)')
    .action(async (id: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      await revokeToken(await ctx.client(), id);
      ctx.out.result({ id, revoked: true }, () => ctx.out.line(`revoked token ${id}`));
    });
  examples(cmd, ['flotilla tokens revoke at_0123abcd']);
}
