import type { Command } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import type { ReleaseDiff } from '@flotilla/protocol';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import type { Printer } from '../../output/printer.js';
import { formatBytes } from '../../push/progress.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { diffReleases } from '../../push/releases-api.js';

export function registerReleaseDiff(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('diff')
    .description('what changed between two releases of an app, and what a device would fetch')
    .argument('<from>', 'the older release, e.g. web@1.3.0')
    .argument('<to>', 'the newer release, e.g. web@1.4.0')
    .action(async (fromRef: string, toRef: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const from = parseReleaseRef(fromRef);
      const to = parseReleaseRef(toRef);
      if (from.app !== to.app) {
        throw new FlotillaError(
          'FLT_VALIDATION',
          `both releases must be of one app, got ${from.app} and ${to.app}`,
        );
      }
      const diff = await diffReleases(await ctx.client(), from.app, from.version, to.version);
      ctx.out.result(diff, () => printDiff(ctx.out, diff));
    });
  examples(cmd, [
    'flotilla release diff web@1.3.0 web@1.4.0',
    'flotilla release diff web@1.3.0 web@1.4.0 --json | jq ".modified[].path"',
  ]);
}

function printDiff(out: Printer, diff: ReleaseDiff): void {
  const rows = [
    ...diff.added.map((f) => ['added', f.path, '-', formatBytes(f.size)]),
    ...diff.removed.map((f) => ['removed', f.path, formatBytes(f.size), '-']),
    ...diff.modified.map((f) => ['modified', f.path, formatBytes(f.oldSize), formatBytes(f.newSize)]),
  ];
  out.table(['change', 'path', diff.from, diff.to], rows, 'no file changed');
  const sum = (sizes: number[]) => formatBytes(sizes.reduce((a, b) => a + b, 0));
  out.line(
    `${diff.added.length} added (${sum(diff.added.map((f) => f.size))}), ` +
      `${diff.removed.length} removed (${sum(diff.removed.map((f) => f.size))}), ` +
      `${diff.modified.length} modified; a device on ${diff.from} fetches ${diff.fetchObjects} objects, ` +
      `${formatBytes(diff.fetchBytes)}`,
  );
}
