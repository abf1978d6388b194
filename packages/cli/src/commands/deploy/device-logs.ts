import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import {
  FlotillaError,
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
import { logsStreamOptions, runLogStream } from '../remote/device-commands.js';

interface LogsOptions {
  app: string;
  bytes?: number;
  stream?: LogStream;
  service?: string;
  follow?: boolean;
  tail?: number;
  since?: number;
}

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
    .description(
      "an app's log lines, read live from the connected device, followed with -f (deployer); --bytes/--stream read a raw tail of a process app instead",
    )
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .requiredOption('--app <name>', 'the app')
    .option(
      '--bytes <n>',
      `raw tail: how much, in bytes (at most ${LOGS_MAX_BYTES}; default ${LOGS_DEFAULT_BYTES})`,
      bytesArg,
    )
    .addOption(
      new Option('--stream <stream>', 'raw tail: which output (default both)').choices([
        'stdout',
        'stderr',
        'both',
      ]),
    );
  logsStreamOptions(cmd).action(async (id: string, opts: LogsOptions, command: Command) => {
    if (opts.bytes === undefined && opts.stream === undefined) return runLogStream(io, command, id, opts);
    if (opts.follow || opts.tail !== undefined || opts.since !== undefined || opts.service !== undefined)
      throw new FlotillaError(
        'FLT_VALIDATION',
        '--bytes/--stream read a raw tail: they do not combine with -f, --tail, --since or --service',
      );
    const ctx = contextFor(io, command);
    const app = checkAppName(opts.app);
    const client = await ctx.client();
    const deviceId = await resolveDeviceId(client, id);
    const logs = await deviceAppLogs(
      client,
      deviceId,
      app,
      opts.bytes ?? LOGS_DEFAULT_BYTES,
      opts.stream ?? 'both',
    );
    ctx.out.result({ deviceId, ...logs }, () => {
      if (logs.truncated)
        ctx.out.note(`(older output left out; ask for more with --bytes, up to ${LOGS_MAX_BYTES})`);
      if (logs.text === '') ctx.out.note(`${app} has written nothing yet`);
      else ctx.out.line(logs.text.endsWith('\n') ? logs.text.slice(0, -1) : logs.text);
    });
  });
  examples(cmd, [
    'flotilla devices logs 3f2a9c0d1e4b --app web -f',
    'flotilla devices logs 3f2a9c0d1e4b --app shop --service worker --tail 20 --since 10m',
    'flotilla devices logs 3f2a9c0d1e4b --app web --json   # one JSON line per log line',
    'flotilla devices logs 3f2a9c0d1e4b --app web --stream stderr --bytes 4096',
    'flotilla devices logs 3f2a9c0d1e4b --app web --json',
  ]);
}
