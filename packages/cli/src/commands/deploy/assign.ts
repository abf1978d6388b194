import type { Command } from 'commander';
import { LIMITS } from '@flotilla/protocol';
import type { DeployRequest } from '@flotilla/protocol';
import { contextFor } from '../../context.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { shortId } from '../../output/format.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { deployRelease } from '../../push/releases-api.js';
import { resolveDeviceId } from '../devices/resolve-id.js';

interface AssignOptions {
  device?: string;
  filter?: string;
}

export function registerDeployAssign(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('assign', { isDefault: true })
    .description(
      'assign a release to one device or to every device a filter selects (the default: `deploy APP@VERSION …`)',
    )
    .argument('<app@version>', 'the release, e.g. web@1.4.0')
    .option('--device <id>', 'one device: its id, or the unique prefix `devices ls` prints')
    .option(
      '--filter <rsql>',
      `devices selected by RSQL, e.g. "tags==canary;arch==arm64" (at most ${LIMITS.filterChars} characters)`,
    )
    .action(async (ref: string, opts: AssignOptions, command: Command) => {
      if ((opts.device === undefined) === (opts.filter === undefined))
        usageError(command, 'give exactly one of --device or --filter');
      const ctx = contextFor(io, command);
      const { app, version } = parseReleaseRef(ref);
      const client = await ctx.client();
      const req: DeployRequest = { app, version };
      if (opts.device !== undefined) req.deviceId = await resolveDeviceId(client, opts.device);
      if (opts.filter !== undefined) req.filter = opts.filter;
      const res = await deployRelease(client, req);
      ctx.out.result(res, () => {
        if (res.devices.length === 0)
          ctx.out.note(`no device matched; ${app}@${version} was assigned to none`);
        else
          ctx.out.line(
            `assigned ${app}@${version} to ${res.devices.length} device(s): ${res.devices.map(shortId).join(', ')}`,
          );
        ctx.out.note(`follow it with: flotilla deploy status ${app}@${version}`);
      });
    });
  examples(cmd, [
    'flotilla deploy web@1.4.0 --device 3f2a9c0d1e4b',
    'flotilla deploy web@1.4.0 --filter "tags==canary;arch=in=(arm64,amd64)"',
  ]);
}
