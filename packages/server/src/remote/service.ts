/**
 * Remote access to a connected device (docs/remote-access.md): service commands and stats as
 * control-channel requests, and streams (followed logs, exec, tunnels) over the device's
 * multiplexer. Every command is audited once the operator's role allowed it and the device took it.
 */
import { AgentCommands, FlotillaError, ServerCommands, checkAgentFrame } from '@flotilla/protocol';
import type { AppStats, ErrorCode, Role, ServiceAction, StreamClose, StreamOpen } from '@flotilla/protocol';
import type { MuxStream, MuxStreamSink } from '@flotilla/node-kit';
import type { ServerContext } from '../context.js';
import type { Presence } from '../devices/presence.js';
import type { OperatorStreams } from './operator-streams.js';

export interface RemoteServices {
  ctx: ServerContext;
  presence: Presence;
  operators: OperatorStreams;
}

export interface RemoteActor {
  userId: string;
  sourceIp: string | null;
}

/** How long a device has to carry out a start/stop/restart (a stop may wait for a process to end). */
export const CONTROL_TIMEOUT_MS = 60_000;
/** How long a device has to say a stream's source is ready. */
export const STREAM_OPEN_TIMEOUT_MS = 10_000;

/** Codes a device may pass through; any other becomes FLT_RUNTIME_FAILED (see deployments/logs.ts). */
const DEVICE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'FLT_APP_NOT_INSTALLED',
  'FLT_RUNTIME_UNSUPPORTED',
  'FLT_BAD_REQUEST',
  'FLT_VALIDATION',
  'FLT_IO',
  'FLT_NOT_FOUND',
  'FLT_CONFLICT',
  'FLT_PORT_NOT_ALLOWED',
  'FLT_STREAM_PROTOCOL',
  'FLT_STREAM_LIMIT',
  'FLT_NETWORK',
  'FLT_ENGINE_UNAVAILABLE',
  'FLT_HEALTH_CHECK_FAILED',
  'FLT_DEVICE_OFFLINE',
  'FLT_DEVICE_REVOKED',
]);

export function deviceError(deviceId: string, error: { code: string; message: string }): FlotillaError {
  const known = DEVICE_CODES.has(error.code as ErrorCode);
  const code: ErrorCode = known ? (error.code as ErrorCode) : 'FLT_RUNTIME_FAILED';
  return new FlotillaError(code, `device ${deviceId}: ${error.message}`, {
    details: { deviceId, deviceCode: error.code },
  });
}

/** The device exists (FLT_DEVICE_NOT_FOUND) and, when `app` is named, has it assigned (FLT_NOT_FOUND). */
export async function requireDevice(ctx: ServerContext, deviceId: string, app?: string): Promise<void> {
  const row = await ctx.db.selectFrom('devices').select('id').where('id', '=', deviceId).executeTakeFirst();
  if (!row) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${deviceId}`);
  if (app === undefined) return;
  const assigned = await ctx.db
    .selectFrom('device_apps')
    .select('app')
    .where('device_id', '=', deviceId)
    .where('app', '=', app)
    .executeTakeFirst();
  if (!assigned) throw new FlotillaError('FLT_NOT_FOUND', `device ${deviceId} has no app ${app}`);
}

async function audit(
  svc: RemoteServices,
  actor: RemoteActor,
  action: string,
  deviceId: string,
  details: Record<string, unknown>,
): Promise<void> {
  await svc.ctx.audit.record({
    actorType: 'user',
    actorId: actor.userId,
    action,
    subjectType: 'device',
    subjectId: deviceId,
    sourceIp: actor.sourceIp,
    details,
  });
}

/** Starts, stops or restarts an app or one service; audited as `device.app.control` once the device did it. */
export async function controlApp(
  svc: RemoteServices,
  deviceId: string,
  app: string,
  action: ServiceAction,
  service: string | undefined,
  actor: RemoteActor,
): Promise<void> {
  await requireDevice(svc.ctx, deviceId, app);
  const answer = await svc.presence.request(
    deviceId,
    ServerCommands.control,
    { app, action, ...(service !== undefined && { service }) },
    CONTROL_TIMEOUT_MS,
  );
  const checked = checkAgentFrame(answer);
  if (!checked.ok || checked.frame.command !== AgentCommands.ack)
    throw new FlotillaError('FLT_NETWORK', `device ${deviceId} sent an invalid answer to control`);
  const ack = checked.frame.data;
  if (!ack.ok) {
    const error = ack.error ?? { code: 'FLT_RUNTIME_FAILED', message: 'refused' };
    // An agent too old to know `control` acks it as an unknown command.
    if (error.code === 'FLT_BAD_REQUEST' && error.message.startsWith('unknown command'))
      throw new FlotillaError(
        'FLT_RUNTIME_UNSUPPORTED',
        `the agent on device ${deviceId} is too old for ${action}`,
      );
    throw deviceError(deviceId, error);
  }
  await audit(svc, actor, 'device.app.control', deviceId, {
    app,
    action,
    ...(service !== undefined && { service }),
  });
}

/** Each service's state and usage, read live; audited as `device.app.stats`. */
export async function appStats(
  svc: RemoteServices,
  deviceId: string,
  app: string,
  actor: RemoteActor,
): Promise<AppStats & { deviceId: string }> {
  await requireDevice(svc.ctx, deviceId, app);
  const answer = await svc.presence.request(deviceId, ServerCommands.stats, { app });
  if (answer.command === AgentCommands.ack)
    throw new FlotillaError(
      'FLT_RUNTIME_UNSUPPORTED',
      `the agent on device ${deviceId} cannot report stats; upgrade it`,
    );
  const checked = checkAgentFrame(answer);
  if (!checked.ok || checked.frame.command !== AgentCommands.statsResult)
    throw new FlotillaError('FLT_NETWORK', `device ${deviceId} sent an invalid stats-result`);
  const result = checked.frame.data;
  if ('error' in result) throw deviceError(deviceId, result.error);
  if (result.app !== app)
    throw new FlotillaError('FLT_NETWORK', `device ${deviceId} answered about another app`);
  await audit(svc, actor, 'device.app.stats', deviceId, { app });
  return { deviceId, ...result };
}

/** The audit action of each stream kind. */
const STREAM_ACTIONS = {
  logs: 'device.logs.stream',
  exec: 'device.exec',
  tunnel: 'device.tunnel.open',
} as const;

/** The role each stream kind needs (docs/remote-access.md "Roles"). */
export const STREAM_ROLES: Record<StreamOpen['kind'], Role> = {
  logs: 'deployer',
  exec: 'admin',
  tunnel: 'admin',
};

export interface OpenedStream {
  stream: MuxStream;
  /** Resolves when the device's source is ready; rejects with the device's refusal or a timeout. */
  ready: Promise<void>;
}

/**
 * Audits, then opens a stream to the device. `sink` gets what the device sends; the stream is
 * registered with the operator's user so that revoking them closes it (`onRevoked`).
 */
export async function openDeviceStream(
  svc: RemoteServices,
  deviceId: string,
  request: StreamOpen,
  actor: RemoteActor,
  sink: MuxStreamSink,
  onRevoked: (reason: string) => void,
): Promise<OpenedStream> {
  await requireDevice(svc.ctx, deviceId, request.app);
  const mux = svc.presence.muxOf(deviceId);
  const { kind, ...details } = request;
  await audit(svc, actor, STREAM_ACTIONS[kind], deviceId, details);
  let settle: { resolve: () => void; reject: (e: FlotillaError) => void } | null = null;
  const ready = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  ready.catch(() => undefined);
  let release = () => undefined as void;
  const timer = setTimeout(() => {
    settle?.reject(
      new FlotillaError(
        'FLT_DEVICE_TIMEOUT',
        `device ${deviceId} did not open the stream within ${STREAM_OPEN_TIMEOUT_MS} ms`,
      ),
    );
    settle = null;
    stream.reset({ error: { code: 'FLT_DEVICE_TIMEOUT', message: 'not opened in time' } });
  }, STREAM_OPEN_TIMEOUT_MS);
  let stream: MuxStream;
  try {
    stream = mux.open(request, {
      onOpened: () => {
        clearTimeout(timer);
        settle?.resolve();
        settle = null;
        sink.onOpened?.();
      },
      onData: (chunk, channel, done) => sink.onData(chunk, channel, done),
      onEof: () => sink.onEof(),
      onClose: (result: StreamClose) => {
        clearTimeout(timer);
        release();
        if (settle) {
          settle.reject(
            result.error
              ? deviceError(deviceId, result.error)
              : new FlotillaError('FLT_NETWORK', `device ${deviceId} closed the stream at once`),
          );
          settle = null;
        }
        sink.onClose(result);
      },
    });
  } catch (e) {
    clearTimeout(timer);
    const code = (e as { code?: unknown }).code;
    throw new FlotillaError(
      code === 'FLT_STREAM_LIMIT' ? 'FLT_STREAM_LIMIT' : 'FLT_DEVICE_OFFLINE',
      e instanceof Error ? e.message : 'cannot open a stream',
    );
  }
  release = svc.operators.add(actor.userId, STREAM_ROLES[kind], (reason) => {
    stream.reset({ error: { code: 'FLT_FORBIDDEN', message: reason } });
    onRevoked(reason);
  });
  return { stream, ready };
}
