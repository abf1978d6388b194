import type { Command } from 'commander';
import type { DeviceTagsRequest } from '@flotilla/protocol';
import { setDeviceTags } from '../../api/operator.js';
import { tagListArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { list } from '../../output/format.js';
import { resolveDeviceId } from './resolve-id.js';

interface TagOptions {
  add?: string[];
  remove?: string[];
  set?: string[];
}

export function registerDeviceTag(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('tag')
    .description("change a device's tags")
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .option('--add <a,b>', 'tags to add', tagListArg)
    .option('--remove <a,b>', 'tags to remove', tagListArg)
    .option('--set <a,b>', 'replace all tags with these ("" for none)', tagListArg)
    .action(async (id: string, opts: TagOptions, command: Command) => {
      if (!opts.add && !opts.remove && !opts.set)
        usageError(command, 'give at least one of --add, --remove, --set');
      if (opts.set && (opts.add || opts.remove)) usageError(command, '--set replaces all tags: use it alone');
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const req: DeviceTagsRequest = {};
      if (opts.add) req.add = opts.add;
      if (opts.remove) req.remove = opts.remove;
      if (opts.set) req.set = opts.set;
      const device = await setDeviceTags(client, await resolveDeviceId(client, id), req);
      ctx.out.result(device, () => ctx.out.line(`device ${device.id} tags: ${list(device.tags)}`));
    });
  examples(cmd, [
    'flotilla devices tag 3f2a9c0d1e4b --add canary,lab --remove staging',
    'flotilla devices tag 3f2a9c0d1e4b --set prod,eu-west',
  ]);
}
