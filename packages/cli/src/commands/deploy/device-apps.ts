import type { Command } from 'commander';
import type { DeviceApp, DeviceAppAction } from '@flotilla/protocol';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { relativeTime } from '../../output/format.js';
import { checkAppName } from '../../push/release-ref.js';
import { deviceAppAction, deviceApps } from '../../push/releases-api.js';
import { resolveDeviceId } from '../devices/resolve-id.js';
import { registerDeviceLogs } from './device-logs.js';
import { registerRemoteDeviceCommands } from '../remote/device-commands.js';
import { progressText, releaseOfPath } from './view.js';

function appRow(a: DeviceApp): string[] {
  const p = a.process;
  return [
    a.app,
    releaseOfPath(a.current),
    releaseOfPath(a.desired),
    a.phase ?? '-',
    progressText(a),
    p ? `${p.state} since ${relativeTime(p.since)}` : '-',
    p ? String(p.restarts) : '-',
    p?.lastExit ? `${exitText(p.lastExit)}, ${relativeTime(p.lastExit.at)}` : '-',
    a.error ? `${a.error.code}: ${a.error.message}` : '-',
    relativeTime(a.updatedAt),
  ];
}

/** `code 3` or the signal that ended the process. */
export function exitText(exit: { code: number | null; signal: string | null }): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `code ${String(exit.code)}`;
}

/** `devices apps|rollback|restart|logs`, added to the `devices` group. */
export function registerDeviceAppCommands(devices: Command, io: CliIo): void {
  const apps = devices
    .command('apps')
    .description(
      'what a device runs per app: running and assigned release, update phase, the process (state, restarts, last exit), errors',
    )
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .action(async (id: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const list = await deviceApps(client, await resolveDeviceId(client, id));
      ctx.out.result(list, () =>
        ctx.out.table(
          [
            'app',
            'running',
            'assigned',
            'phase',
            'progress',
            'process',
            'restarts',
            'last exit',
            'error',
            'updated',
          ],
          list.items.map(appRow),
          'no apps assigned to this device',
        ),
      );
    });
  examples(apps, ['flotilla devices apps 3f2a9c0d1e4b', 'flotilla devices apps 3f2a9c0d1e4b --json']);
  registerAppAction(devices, io, 'rollback', 'switch an app back to the release it ran before');
  registerRemoteDeviceCommands(devices, io);
  registerDeviceLogs(devices, io);
}

function registerAppAction(devices: Command, io: CliIo, action: DeviceAppAction, description: string): void {
  const cmd = devices
    .command(action)
    .description(description)
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .requiredOption('--app <name>', 'the app')
    .action(async (id: string, opts: { app: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const app = checkAppName(opts.app);
      const client = await ctx.client();
      const deviceId = await resolveDeviceId(client, id);
      await deviceAppAction(client, deviceId, app, action);
      ctx.out.result({ deviceId, app, action, sent: true }, () =>
        ctx.out.line(
          `sent ${action} of ${app} to device ${deviceId}; follow it with: flotilla devices apps ${deviceId}`,
        ),
      );
    });
  examples(cmd, [`flotilla devices ${action} 3f2a9c0d1e4b --app web`]);
}
