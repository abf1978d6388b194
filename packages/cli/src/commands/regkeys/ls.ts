import type { Command } from 'commander';
import { listRegistrationKeys } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { REGKEY_HEAD, regkeyRow } from './view.js';

export function registerRegkeyList(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('ls')
    .description('list registration keys (never their secrets)')
    .action(async (_opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const res = await listRegistrationKeys(await ctx.client());
      ctx.out.result(res, () => ctx.out.table(REGKEY_HEAD, res.items.map(regkeyRow), 'no registration keys'));
    });
  examples(cmd, ['flotilla regkeys ls', 'flotilla regkeys ls --json']);
}
