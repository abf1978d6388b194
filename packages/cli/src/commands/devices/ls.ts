import type { Command } from 'commander';
import { LIMITS } from '@flotilla/protocol';
import { listDevices } from '../../api/operator.js';
import { offsetArg, pageLimitArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { DEVICE_HEAD, deviceRow } from './view.js';

interface ListOptions {
  filter?: string;
  sort?: string;
  limit?: number;
  offset?: number;
  quiet?: boolean;
}

export function registerDeviceList(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('ls')
    .description('list devices, optionally filtered with RSQL')
    .option(
      '--filter <rsql>',
      'RSQL filter over status, hostname, tags and facts, e.g. "tags==lab;arch==arm64"',
    )
    .option('--sort <fields>', 'comma-separated fields, "-" for descending, e.g. -lastSeenAt,id')
    .option(
      '--limit <n>',
      `page size, 1-${LIMITS.pageSizeMax} (default ${LIMITS.pageSizeDefault})`,
      pageLimitArg,
    )
    .option('--offset <n>', 'skip this many devices', offsetArg)
    .option('-q, --quiet', 'print only the device ids, one per line (for $(...) in scripts)')
    .action(async (opts: ListOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const page = await listDevices(await ctx.client(), {
        filter: opts.filter,
        sort: opts.sort,
        limit: opts.limit,
        offset: opts.offset,
      });
      if (opts.quiet && !ctx.out.json) {
        for (const d of page.items) io.stdout.write(`${d.id}\n`);
        return;
      }
      ctx.out.result(page, () => {
        ctx.out.table(DEVICE_HEAD, page.items.map(deviceRow), 'no devices');
        if (page.total > page.offset + page.items.length) {
          ctx.out.note(
            `showing ${page.offset + 1}-${page.offset + page.items.length} of ${page.total}; ` +
              `next page: --offset ${page.offset + page.items.length}`,
          );
        }
      });
    });
  examples(cmd, [
    'flotilla devices ls',
    'flotilla devices ls --filter "status==pending"',
    'flotilla devices ls --filter "tags==canary;arch=in=(arm64,amd64)" --sort -lastSeenAt',
    'flotilla devices ls --json | jq -r ".items[].id"',
    "flotilla devices apps $(flotilla devices ls --filter 'tags==local' -q)",
  ]);
}
