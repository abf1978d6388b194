import type { Command } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import type { DeviceApp, DeviceAppAction, ServiceStats } from '@flotilla/protocol';
import type { ApiClient } from '../../api/client.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { relativeTime } from '../../output/format.js';
import { checkAppName } from '../../push/release-ref.js';
import { deviceAppAction, deviceApps } from '../../push/releases-api.js';
import { resolveDeviceId } from '../devices/resolve-id.js';
import { registerDeviceLogs } from './device-logs.js';
import {
  SERVICE_HEAD,
  appStats,
  registerRemoteDeviceCommands,
  serviceRow,
} from '../remote/device-commands.js';
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

/** One app of `devices apps`, with its services as the device reports them live (null: not read). */
export type DeviceAppWithServices = DeviceApp & {
  services: ServiceStats[] | null;
  servicesError?: { code: string; message: string };
};

/**
 * Each installed app's services (docker: each container; process: its process), read live from the
 * device in parallel. A device that is offline, or a runtime without services (files), leaves
 * `services` null with the reason; the app list itself never fails for it.
 */
export async function withServices(
  client: ApiClient,
  deviceId: string,
  items: readonly DeviceApp[],
): Promise<DeviceAppWithServices[]> {
  return Promise.all(
    items.map(async (a): Promise<DeviceAppWithServices> => {
      if (a.current === null) return { ...a, services: null };
      try {
        return { ...a, services: (await appStats(client, deviceId, a.app)).services };
      } catch (e) {
        const error =
          e instanceof FlotillaError
            ? { code: e.code, message: e.message }
            : { code: 'FLT_INTERNAL', message: e instanceof Error ? e.message : String(e) };
        return { ...a, services: null, servicesError: error };
      }
    }),
  );
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
      'what a device runs per app: running and assigned release, update phase, the process (state, restarts, last exit), errors; and each service (docker: each container) with its state, health, restarts, CPU and memory, read live from a connected device',
    )
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .option('--no-services', 'do not ask the device for its services (faster; works offline)')
    .action(async (id: string, opts: { services: boolean }, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const deviceId = await resolveDeviceId(client, id);
      const apps = await deviceApps(client, deviceId);
      const list: { items: DeviceAppWithServices[] } = {
        ...apps,
        items: opts.services
          ? await withServices(client, deviceId, apps.items)
          : apps.items.map((a): DeviceAppWithServices => ({ ...a, services: null })),
      };
      ctx.out.result(list, () => {
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
        );
        for (const a of list.items) {
          if (a.services === null || a.services.length === 0) continue;
          ctx.out.line(`\n${a.app}: services`);
          ctx.out.table(SERVICE_HEAD, a.services.map(serviceRow));
        }
        const unread = list.items.filter(
          (a) => a.servicesError && a.servicesError.code !== 'FLT_RUNTIME_UNSUPPORTED',
        );
        for (const a of unread)
          ctx.out.note(`${a.app}: services not read: ${a.servicesError!.code}: ${a.servicesError!.message}`);
      });
    });
  examples(apps, [
    'flotilla devices apps 3f2a9c0d1e4b',
    'flotilla devices apps 3f2a9c0d1e4b --no-services',
    'flotilla devices apps 3f2a9c0d1e4b --json',
  ]);
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
