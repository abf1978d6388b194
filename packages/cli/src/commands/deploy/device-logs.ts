import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import {
  AppLogs,
  DEVICE_APP_LOGS_ROUTE,
  LOGS_DEFAULT_BYTES,
  LOGS_MAX_BYTES,
  routePath,
} from '@flotilla/protocol';
import type { LogStream } from '@flotilla/protocol';
import type { ApiClient } from '../../api/client.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { checkAppName } from '../../push/release-ref.js';
import { resolveDeviceId } from '../devices/resolve-id.js';

export const deviceAppLogs = (c: ApiClient, id: string, app: string, maxBytes: number, stream: LogStream) =>
  c.request('GET', routePath(DEVICE_APP_LOGS_ROUTE, { id, app }), AppLogs, { query: { maxBytes, stream } });

function bytesArg(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 1 && n <= LOGS_MAX_BYTES))
    throw new InvalidArgumentError(`must be an integer from 1 to ${LOGS_MAX_BYTES}`);
  return n;
}

/** `devices logs ID --app A`: the tail of an app's stdout/stderr, read live from the device. */
export function registerDeviceLogs(devices: Command, io: CliIo): void {
  const cmd = devices
    .command('logs')
    .description("the tail of an app's stdout/stderr, read live from the connected device (deployer)")
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .requiredOption('--app <name>', 'the app')
    .option(
      '--bytes <n>',
      `how much of the tail, in bytes (at most ${LOGS_MAX_BYTES})`,
      bytesArg,
      LOGS_DEFAULT_BYTES,
    )
    .addOption(
      new Option('--stream <stream>', 'which output').choices(['stdout', 'stderr', 'both']).default('both'),
    )
    .action(async (id: string, opts: { app: string; bytes: number; stream: LogStream }, command: Command) => {
      const ctx = contextFor(io, command);
      const app = checkAppName(opts.app);
      const client = await ctx.client();
      const deviceId = await resolveDeviceId(client, id);
      const logs = await deviceAppLogs(client, deviceId, app, opts.bytes, opts.stream);
      ctx.out.result({ deviceId, ...logs }, () => {
        if (logs.truncated)
          ctx.out.note(`(older output left out; ask for more with --bytes, up to ${LOGS_MAX_BYTES})`);
        if (logs.text === '') ctx.out.note(`${app} has written nothing yet`);
        else ctx.out.line(logs.text.endsWith('\n') ? logs.text.slice(0, -1) : logs.text);
      });
    });
  examples(cmd, [
    'flotilla devices logs 3f2a9c0d1e4b --app web',
    'flotilla devices logs 3f2a9c0d1e4b --app web --stream stderr --bytes 4096',
    'flotilla devices logs 3f2a9c0d1e4b --app web --json',
  ]);
}
