/**
 * `devices start|stop|restart|stats|exec` and the streaming `devices logs` (docs/remote-access.md).
 */
import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import {
  AppStats,
  DEVICE_APP_CONTROL_ROUTE,
  DEVICE_APP_LOG_STREAM_ROUTE,
  DEVICE_APP_STATS_ROUTE,
  DEVICE_EXEC_ROUTE,
  FlotillaError,
  RemoteLogLine,
  Type,
  errorFromEnvelope,
  parseDurationMs,
  routePath,
} from '@flotilla/protocol';
import type { ServiceStats } from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';
import type { ApiClient } from '../../api/client.js';
import { contextFor } from '../../context.js';
import { ExitWith } from '../../exit-codes.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { checkAppName } from '../../push/release-ref.js';
import { resolveDeviceId } from '../devices/resolve-id.js';
import { openOperatorSocket, readOperatorSocket, sendAll, sendEof } from './streams.js';

const StatsAnswer = Type.Intersect([Type.Object({ deviceId: Type.String() }), AppStats]);

function tailArg(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 0 && n <= 100_000)) throw new InvalidArgumentError('must be an integer from 0 to 100000');
  return n;
}

/** `10m`, `2h`… before now, or an ISO date; as epoch ms. */
export function sinceArg(value: string, now = Date.now()): number {
  if (/^\d+(ms|s|m|h|d)$/.test(value.trim())) {
    try {
      return now - parseDurationMs(value.trim());
    } catch {
      // fall through to a date
    }
  }
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new InvalidArgumentError('must be a duration like 10m or 2h, or an ISO date');
  return at;
}

function writeBytes(sink: CliIo['stdout'], chunk: Buffer): Promise<void> | void {
  const w = sink as unknown as { write(b: Uint8Array, cb?: () => void): boolean; once?: unknown };
  const more = w.write(chunk);
  if (more === false && typeof (sink as NodeJS.WritableStream).once === 'function')
    return new Promise((resolve) => (sink as NodeJS.WritableStream).once('drain', () => resolve()));
}

/** Aborts when SIGINT/SIGTERM arrives (following logs until the operator stops). */
function stopSignal(io: CliIo): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const stop = () => controller.abort();
  io.signals.on('SIGINT', stop);
  io.signals.on('SIGTERM', stop);
  return {
    signal: controller.signal,
    dispose: () => {
      io.signals.off('SIGINT', stop);
      io.signals.off('SIGTERM', stop);
    },
  };
}

/** Reads the log stream; each line to `onLine`. Resolves at its end (or when `signal` aborts). */
export async function streamLogs(
  client: ApiClient,
  deviceId: string,
  app: string,
  query: { service?: string; tail?: number; since?: number; follow: boolean },
  signal: AbortSignal,
  onLine: (line: RemoteLogLine) => void,
): Promise<void> {
  const params = new URLSearchParams({ follow: String(query.follow) });
  if (query.service !== undefined) params.set('service', query.service);
  if (query.tail !== undefined) params.set('tail', String(query.tail));
  if (query.since !== undefined) params.set('since', String(query.since));
  const url = `${client.baseUrl}${routePath(DEVICE_APP_LOG_STREAM_ROUTE, { id: deviceId, app })}?${params.toString()}`;
  let res: Response;
  try {
    res = await fetch(url, {
      headers: client.token === undefined ? {} : { authorization: `Bearer ${client.token}` },
      signal,
    });
  } catch (e) {
    if (signal.aborted) return;
    throw new FlotillaError(
      'FLT_NETWORK',
      `cannot reach ${client.baseUrl}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (!res.ok) {
    let body: unknown = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    throw errorFromEnvelope(res.status, body, res.headers.get('retry-after') ?? undefined);
  }
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const text = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        if (text === '') continue;
        const value = JSON.parse(text) as unknown;
        if (value !== null && typeof value === 'object' && 'error' in value) {
          const error = (value as { error: { code: string; message: string } }).error;
          throw errorFromEnvelope(500, { error });
        }
        if (Value.Check(RemoteLogLine, value)) onLine(value);
      }
    }
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  }
}

/** The columns of `devices stats` and of the per-service table of `devices apps`. */
export const SERVICE_HEAD = [
  'service',
  'state',
  'health',
  'restarts',
  'cpu',
  'memory',
  'pid / container',
  'started',
] as const;

export function serviceRow(s: ServiceStats): string[] {
  return [
    s.service,
    s.state,
    s.health,
    String(s.restarts),
    s.cpuPercent === undefined ? '-' : `${s.cpuPercent.toFixed(1)}%`,
    s.memoryBytes === undefined ? '-' : `${(s.memoryBytes / (1024 * 1024)).toFixed(1)} MiB`,
    s.pid !== undefined ? String(s.pid) : (s.containerId?.slice(0, 12) ?? '-'),
    s.startedAt ?? '-',
  ];
}

/** Each service of `app`, read live from the device (`devices stats`). */
export async function appStats(client: ApiClient, deviceId: string, app: string): Promise<AppStats> {
  return client.request('GET', routePath(DEVICE_APP_STATS_ROUTE, { id: deviceId, app }), StatsAnswer);
}

function serviceOption(cmd: Command, what: string): Command {
  return cmd.option('--service <name>', what);
}

export function registerRemoteDeviceCommands(devices: Command, io: CliIo): void {
  for (const [action, description] of [
    ['start', 'start an app (or one service of it) that was stopped, on a connected device (deployer)'],
    [
      'stop',
      'stop an app (or one service of it) on a connected device, until started again or updated (deployer)',
    ],
    ['restart', 'restart an app (or one service of it) on a connected device, same release (deployer)'],
  ] as const) {
    const cmd = serviceOption(
      devices
        .command(action)
        .description(description)
        .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
        .requiredOption('--app <name>', 'the app'),
      'one service of the app (docker apps; a process app has one, named after the app)',
    ).action(async (id: string, opts: { app: string; service?: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const app = checkAppName(opts.app);
      const client = await ctx.client();
      const deviceId = await resolveDeviceId(client, id);
      await client.requestVoid('POST', routePath(DEVICE_APP_CONTROL_ROUTE, { id: deviceId, app }), {
        body: {
          action,
          ...(opts.service !== undefined && { service: opts.service }),
        },
      });
      ctx.out.result({ deviceId, app, service: opts.service ?? null, action, ok: true }, () =>
        ctx.out.note(`${action}: ${app}${opts.service ? `/${opts.service}` : ''} on ${deviceId}: done`),
      );
    });
    examples(cmd, [
      `flotilla devices ${action} 3f2a9c0d1e4b --app web`,
      `flotilla devices ${action} 3f2a9c0d1e4b --app shop --service worker --json`,
    ]);
  }

  const stats = devices
    .command('stats')
    .description(
      'each service of an app: state, health, restarts, CPU and memory, read live from the device (viewer)',
    )
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .requiredOption('--app <name>', 'the app')
    .action(async (id: string, opts: { app: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const app = checkAppName(opts.app);
      const client = await ctx.client();
      const deviceId = await resolveDeviceId(client, id);
      const answer = { deviceId, ...(await appStats(client, deviceId, app)) };
      ctx.out.result(answer, () =>
        ctx.out.table(SERVICE_HEAD, answer.services.map(serviceRow), 'no services'),
      );
    });
  examples(stats, [
    'flotilla devices stats 3f2a9c0d1e4b --app web',
    'flotilla devices stats 3f2a9c0d1e4b --app shop --json',
  ]);

  const exec = devices
    .command('exec')
    .description(
      "run a command in an app's service on a connected device, stdin/stdout/stderr piped, its exit code passed on (admin; docker apps)",
    )
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .argument('<command...>', 'the command and its arguments (after --)')
    .requiredOption('--app <name>', 'the app')
    .option('--service <name>', 'the service to run it in')
    .option('--no-stdin', 'do not read stdin (the command sees it closed at once)')
    .action(
      async (
        id: string,
        argv: string[],
        opts: { app: string; service?: string; stdin: boolean },
        command: Command,
      ) => {
        const ctx = contextFor(io, command);
        const app = checkAppName(opts.app);
        const client = await ctx.client();
        const deviceId = await resolveDeviceId(client, id);
        const query = new URLSearchParams({ app });
        if (opts.service !== undefined) query.set('service', opts.service);
        for (const word of argv) query.append('cmd', word);
        const ws = await openOperatorSocket(client, DEVICE_EXEC_ROUTE, deviceId, query);
        const ended = readOperatorSocket(ws, {
          onData: (chunk, channel) => writeBytes(channel === 'err' ? io.stderr : io.stdout, chunk),
        });
        const pump = async () => {
          if (opts.stdin) for await (const chunk of io.stdin) await sendAll(ws, Buffer.from(chunk));
          sendEof(ws);
        };
        void pump().catch(() => sendEof(ws));
        const end = await ended;
        if (end.error) throw end.error;
        if (ctx.out.json) io.stdout.write(`${JSON.stringify({ deviceId, app, exitCode: end.exitCode })}\n`);
        if (end.exitCode !== 0) throw new ExitWith(end.exitCode ?? 1);
      },
    );
  examples(exec, [
    'flotilla devices exec 3f2a9c0d1e4b --app shop --service web -- ls -l /data',
    'tar c ./seed | flotilla devices exec 3f2a9c0d1e4b --app shop --service db -- tar x -C /var/lib/seed',
  ]);
}

/** `devices logs`: `--bytes`/`--stream` read the tail as before; otherwise lines, followed with -f. */
export function logsStreamOptions(cmd: Command): Command {
  return cmd
    .option('--service <name>', 'one service of the app (docker apps)')
    .option('-f, --follow', 'keep streaming new lines until Ctrl-C')
    .option('--tail <n>', 'lines to show first (default 100 per stream)', tailArg)
    .addOption(
      new Option('--since <when>', 'only lines written since, e.g. 10m, 2h or an ISO date').argParser((v) =>
        sinceArg(v),
      ),
    );
}

export async function runLogStream(
  io: CliIo,
  command: Command,
  id: string,
  opts: { app: string; service?: string; follow?: boolean; tail?: number; since?: number },
): Promise<void> {
  const ctx = contextFor(io, command);
  const app = checkAppName(opts.app);
  const client = await ctx.client();
  const deviceId = await resolveDeviceId(client, id);
  const stop = stopSignal(io);
  try {
    await streamLogs(
      client,
      deviceId,
      app,
      {
        follow: opts.follow === true,
        ...(opts.service !== undefined && { service: opts.service }),
        ...(opts.tail !== undefined && { tail: opts.tail }),
        ...(opts.since !== undefined && { since: opts.since }),
      },
      stop.signal,
      (line) => {
        if (ctx.out.json) io.stdout.write(`${JSON.stringify(line)}\n`);
        else if (line.stream === 'stderr')
          io.stderr.write(`${line.service ? `${line.service} | ` : ''}${line.text}\n`);
        else io.stdout.write(`${line.service ? `${line.service} | ` : ''}${line.text}\n`);
      },
    );
  } finally {
    stop.dispose();
  }
}
