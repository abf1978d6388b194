import type { Command } from 'commander';
import { createToken } from '../../api/operator.js';
import { durationArg, nonEmptyArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { TOKEN_HEAD, tokenRow } from './view.js';

export function registerTokenCreate(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('create')
    .description('create an API token for automation; its secret is printed once')
    .requiredOption('--name <name>', 'what the token is for', nonEmptyArg)
    .option('--expires <duration>', 'lifetime, e.g. 12h, 30d (default: never)', durationArg)
    .action(async (opts: { name: string; expires?: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const res = await createToken(await ctx.client(), {
        name: opts.name,
        ...(opts.expires ? { expiresIn: opts.expires } : {}),
      });
      ctx.out.result(res, () => {
        ctx.out.table(TOKEN_HEAD, [tokenRow(res.token)]);
        ctx.out.line('');
        ctx.out.line(res.secret);
        ctx.out.warn('this secret is shown only now and cannot be shown again');
      });
    });
  examples(cmd, [
    'flotilla tokens create --name ci --expires 30d',
    'FLOTILLA_TOKEN=$(flotilla tokens create --name ci --json | jq -r .secret)',
  ]);
}
