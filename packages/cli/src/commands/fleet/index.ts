/** `flotilla fleet`: the fleet overview (docs/events.md "Fleet overview"). */
import type { Command } from 'commander';
import type { FleetOverview } from '@flotilla/protocol';
import { fleetOverview } from '../../api/events.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

function printOverview(out: ReturnType<typeof contextFor>['out'], o: FleetOverview): void {
  const d = o.devices;
  out.fields([
    ['devices', String(d.total)],
    ['accepted', `${d.accepted} (online ${d.online}, offline ${d.offline})`],
    ['pending', String(d.pending)],
    ['rejected', String(d.rejected)],
    ['revoked', String(d.revoked)],
  ]);
  out.table(
    ['app', 'version', 'devices', 'share'],
    o.apps.flatMap((a) =>
      a.releases.map((r) => [
        a.app,
        r.version ?? (r.targetPath === null ? '(none running)' : '(unknown release)'),
        String(r.devices),
        a.devices === 0 ? '-' : `${Math.round((100 * r.devices) / a.devices)} %`,
      ]),
    ),
    'no app is assigned to or running on any accepted device',
  );
  for (const a of o.apps)
    if (a.updating > 0) out.note(`${a.app}: ${a.updating} device(s) not yet on their assigned release`);
}

export function registerFleetCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('fleet')
    .description('fleet overview: devices per status, online/offline, which releases the devices run per app')
    .addHelpText(
      'after',
      "\nA device is online while connected or heard from within the server's offline-after time (90 s by\n" +
        'default). The release table counts accepted devices per app and the release they run.',
    )
    .action(async (_opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const overview = await fleetOverview(await ctx.client());
      ctx.out.result(overview, () => printOverview(ctx.out, overview));
    });
  examples(cmd, ['flotilla fleet', 'flotilla fleet --json']);
}
