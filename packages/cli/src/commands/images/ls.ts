import type { Command } from 'commander';
import { listImages } from '../../api/images.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { IMAGE_HEAD, imageRow } from './view.js';

export function registerImageList(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('ls')
    .description('list the images you may see, with when each expires unless looked up')
    .option('--platform <name>', 'only this platform')
    .action(async (opts: { platform?: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const res = await listImages(await ctx.client(), opts.platform);
      ctx.out.result(res, () =>
        ctx.out.table(
          IMAGE_HEAD,
          res.items.map((i) => imageRow(i)),
          'no images',
        ),
      );
    });
  examples(cmd, ['flotilla images ls', 'flotilla images ls --platform cluster --json']);
}
