import type { Command } from 'commander';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { checkAppName } from '../../push/release-ref.js';
import { listReleases } from '../../push/releases-api.js';
import { RELEASE_HEAD, releaseRow } from './view.js';

export function registerReleaseList(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('ls')
    .description('list releases, newest first')
    .option('--app <name>', 'only this app')
    .action(async (opts: { app?: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const app = opts.app === undefined ? undefined : checkAppName(opts.app);
      const list = await listReleases(await ctx.client(), app);
      ctx.out.result(list, () => ctx.out.table(RELEASE_HEAD, list.items.map(releaseRow), 'no releases'));
    });
  examples(cmd, ['flotilla release ls', 'flotilla release ls --app web --json | jq -r ".items[].version"']);
}
