import type { Command } from 'commander';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { getRelease } from '../../push/releases-api.js';
import { releaseFields } from './view.js';

export function registerReleaseShow(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('show')
    .description('show one release')
    .argument('<app@version>', 'the release, e.g. web@1.4.0')
    .action(async (ref: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const { app, version } = parseReleaseRef(ref);
      const release = await getRelease(await ctx.client(), app, version);
      ctx.out.result(release, () => ctx.out.fields(releaseFields(release)));
    });
  examples(cmd, [
    'flotilla release show web@1.4.0',
    'flotilla release show web@1.4.0 --json | jq .targetPath',
  ]);
}
