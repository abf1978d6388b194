import type { Command } from 'commander';
import type { DeployStatus } from '@flotilla/protocol';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { relativeTime, shortId } from '../../output/format.js';
import type { Printer } from '../../output/printer.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { deployStatus } from '../../push/releases-api.js';
import { progressText, releaseOfPath } from './view.js';

export function registerDeployStatus(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('status')
    .description('where a release stands across the fleet: devices per update phase, with errors')
    .argument('<app@version>', 'the release, e.g. web@1.4.0')
    .action(async (ref: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const { app, version } = parseReleaseRef(ref);
      const status = await deployStatus(await ctx.client(), app, version);
      ctx.out.result(status, () => printStatus(ctx.out, status));
    });
  examples(cmd, ['flotilla deploy status web@1.4.0', 'flotilla deploy status web@1.4.0 --json | jq .phases']);
}

function printStatus(out: Printer, status: DeployStatus): void {
  const phases = Object.entries(status.phases).map(([phase, n]) => `${phase} ${n}`);
  out.line(`${status.app}@${status.version}: ${phases.length === 0 ? 'on no device' : phases.join(', ')}`);
  out.table(
    ['device', 'phase', 'running', 'progress', 'error', 'updated'],
    status.devices.map((d) => [
      shortId(d.deviceId),
      d.phase ?? '-',
      releaseOfPath(d.current),
      progressText(d),
      d.error ? `${d.error.code}: ${d.error.message}` : '-',
      relativeTime(d.updatedAt),
    ]),
    'no device is assigned this release',
  );
}
