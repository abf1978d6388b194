import type { Command } from 'commander';
import { me } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

export function registerWhoami(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('whoami')
    .description('show who the stored credentials authenticate as')
    .action(async (_opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const res = await me(client);
      ctx.out.result({ server: client.baseUrl, ...res }, () =>
        ctx.out.fields([
          ['server', client.baseUrl],
          ['user', res.user.username],
          ['id', res.user.id],
          ['role', res.user.role],
          ['via', res.via],
        ]),
      );
    });
  examples(cmd, ['flotilla whoami', 'flotilla whoami --json']);
}
