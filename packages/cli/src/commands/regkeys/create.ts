import type { Command } from 'commander';
import { createRegistrationKey } from '../../api/operator.js';
import { durationArg, nonEmptyArg, positiveIntArg, tagListArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { regkeyFields } from './view.js';

interface CreateOptions {
  name: string;
  tags?: string[];
  maxUses?: number;
  expires?: string;
  autoAccept?: boolean;
}

export function registerRegkeyCreate(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('create')
    .description('create a registration key; its secret is printed once and cannot be shown again')
    .requiredOption('--name <name>', 'a name for the key', nonEmptyArg)
    .option('--tags <a,b>', 'tags given to every device that enrolls with the key', tagListArg)
    .option('--max-uses <n>', 'how many devices may enroll with it (default: unlimited)', positiveIntArg)
    .option('--expires <duration>', 'lifetime, e.g. 12h, 7d (default: never)', durationArg)
    .option('--auto-accept', 'accept devices that enroll with it without review')
    .action(async (opts: CreateOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const res = await createRegistrationKey(await ctx.client(), {
        name: opts.name,
        ...(opts.tags ? { tags: opts.tags } : {}),
        ...(opts.maxUses !== undefined ? { maxUses: opts.maxUses } : {}),
        ...(opts.expires ? { expiresIn: opts.expires } : {}),
        autoAccept: opts.autoAccept === true,
      });
      ctx.out.result(res, () => {
        ctx.out.fields(regkeyFields(res.key));
        ctx.out.line('');
        ctx.out.line(res.secret);
        ctx.out.warn(
          'this secret is shown only now and cannot be shown again: store it where the agent reads it',
        );
      });
    });
  examples(cmd, [
    'flotilla regkeys create --name lab --tags lab,arm64 --max-uses 10 --expires 7d',
    'flotilla regkeys create --name ci --auto-accept --json | jq -r .secret > ci.key',
  ]);
}
