import type { Command } from 'commander';
import { listUsers } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { USER_HEAD, userRow } from './view.js';

export function registerUserList(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('ls')
    .description('list operator accounts')
    .action(async (_opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const res = await listUsers(await ctx.client());
      ctx.out.result(res, () => ctx.out.table(USER_HEAD, res.items.map(userRow), 'no users'));
    });
  examples(cmd, ['flotilla users ls', 'flotilla users ls --json']);
}
