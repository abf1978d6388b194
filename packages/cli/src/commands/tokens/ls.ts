import type { Command } from 'commander';
import { listTokens } from '../../api/operator.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { TOKEN_HEAD, tokenRow } from './view.js';

export function registerTokenList(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('ls')
    .description('list your API tokens (never their secrets)')
    .action(async (_opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const res = await listTokens(await ctx.client());
      ctx.out.result(res, () => ctx.out.table(TOKEN_HEAD, res.items.map(tokenRow), 'no tokens'));
    });
  examples(cmd, ['flotilla tokens ls']);
}
