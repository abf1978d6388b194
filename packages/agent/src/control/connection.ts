/**
 * One WebSocket connection to the control channel, from upgrade to close. Resolves with how it
 * ended; the reconnect policy lives in channel.ts.
 */
import {
  AgentCommands,
  DeviceRoutes,
  FLOTILLA_VERSION,
  ServerCommands,
  WS_MAX_FRAME_BYTES,
  WsClose,
  checkServerFrame,
  errorFromEnvelope,
  errorSummary,
} from '@flotilla/protocol';
import type {
  AgentFrameDataOf,
  AppLogs,
  DeviceAppAction,
  FlotillaError,
  LogsErrorData,
  LogsRequestData,
  WelcomeData,
  WsMessage,
} from '@flotilla/protocol';
import { MuxSession } from '@flotilla/node-kit';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { ackFrame, frame, parseFrame } from './frames.js';
import { logsResultFrame } from './logs-frame.js';
import { openStream } from './streams.js';
import type { RemoteAccess } from './streams.js';

export interface ConnectionHandlers {
  /** The state version the agent holds, sent in `hello`. */
  stateVersion: () => number | null;
  onWelcome: (data: WelcomeData) => void;
  onStateChanged: (stateVersion: number) => void;
  /** Collects and reports inventory; a rejection is sent back as a failed ack. */
  onRequestInventory: () => Promise<void>;
  /** Operator actions on an app (`rollback`, `restart`); a rejection is sent back as a failed ack. */
  onAppAction?: (action: DeviceAppAction, app: string) => Promise<void>;
  /** The tail of an app's logs (`logs`); a throw is sent back as `{ error }` in `logs-result`. */
  onLogs?: (request: LogsRequestData) => AppLogs;
  /** Service commands, stats and streams (docs/remote-access.md); without it they are refused. */
  remote?: RemoteAccess;
}

export type ConnectionEnd =
  | { kind: 'closed'; code: number; reason: string; welcomed: boolean }
  /** The upgrade was answered with an HTTP error (bad token, revoked device…). */
  | { kind: 'refused'; status: number; error: FlotillaError }
  | { kind: 'dead' }
  | { kind: 'stopped' };

export interface ConnectionOptions {
  baseUrl: string;
  token: string;
  logger: Logger;
  heartbeatIntervalMs: number;
  handshakeTimeoutMs: number;
  /** How long a graceful close may take before the socket is cut. */
  closeTimeoutMs: number;
  handlers: ConnectionHandlers;
  /** Source address of the connection (the fleet simulator spreads many over 127.0.0.0/8). */
  localAddress?: string;
}

const MAX_REFUSAL_BODY_BYTES = 64 * 1024;
const UPDATES_DISABLED = {
  code: 'FLT_BAD_REQUEST',
  message: 'updates are not enabled on this agent',
} as const;

export function wsUrl(baseUrl: string): string {
  return `${baseUrl.replace(/^http/, 'ws')}${DeviceRoutes.ws}`;
}

export function runConnection(options: ConnectionOptions, signal: AbortSignal): Promise<ConnectionEnd> {
  const { logger, handlers } = options;
  const ws = new WebSocket(wsUrl(options.baseUrl), {
    headers: { authorization: `Bearer ${options.token}` },
    maxPayload: WS_MAX_FRAME_BYTES,
    handshakeTimeout: options.handshakeTimeoutMs,
    followRedirects: false,
    ...(options.localAddress !== undefined && { localAddress: options.localAddress }),
  });
  let heartbeatMs = options.heartbeatIntervalMs;
  let lastTrafficAt = Date.now();
  let welcomed = false;
  let sequence = 0;
  const sentHeartbeats = new Set<string>();
  let heartbeatTimer: NodeJS.Timeout | null = null;

  return new Promise<ConnectionEnd>((resolve) => {
    let settled = false;
    const settle = (end: ConnectionEnd) => {
      if (settled) return;
      settled = true;
      mux.closeAll({ error: { code: 'FLT_NETWORK', message: 'control channel closed' } });
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      signal.removeEventListener('abort', onAbort);
      resolve(end);
    };
    const touch = () => {
      lastTrafficAt = Date.now();
    };
    const send = (text: string) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(text);
    };
    const nextId = () => `a${++sequence}`;
    // Streams (tunnels, exec, followed logs) ride this connection and end with it.
    const mux = new MuxSession({
      role: 'agent',
      send: (bytes) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(bytes);
      },
      onOpen: (stream, open) => {
        if (!handlers.remote) throw new Error(UPDATES_DISABLED.message);
        logger.info(
          { stream: stream.id, kind: open.kind, app: 'app' in open ? open.app : undefined },
          'remote stream opened',
        );
        return openStream(handlers.remote, stream, open, logger);
      },
      onHostile: (problem) => logger.warn({ problem, binary: true }, 'ignored a malformed control frame'),
    });

    const startHeartbeat = () => {
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      heartbeatTimer = setInterval(() => {
        // No frame, ping or pong for two intervals: the peer or the path is gone.
        if (Date.now() - lastTrafficAt > 2 * heartbeatMs) {
          logger.warn(
            { silentForMs: Date.now() - lastTrafficAt },
            'control channel silent for two heartbeats; reconnecting',
          );
          ws.terminate();
          settle({ kind: 'dead' });
          return;
        }
        const id = nextId();
        sentHeartbeats.add(id);
        if (sentHeartbeats.size > 16) sentHeartbeats.delete(sentHeartbeats.values().next().value as string);
        if (ws.readyState !== WebSocket.OPEN) return;
        send(frame(id, AgentCommands.heartbeat, {}));
        ws.ping();
      }, heartbeatMs);
    };

    const onAbort = () => {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(WsClose.normal, 'agent stopping');
      setTimeout(() => ws.terminate(), options.closeTimeoutMs).unref();
      settle({ kind: 'stopped' });
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });

    ws.on('open', () => {
      touch();
      logger.debug('control channel open');
      const stateVersion = handlers.stateVersion();
      send(
        frame(nextId(), AgentCommands.hello, {
          agentVersion: FLOTILLA_VERSION,
          ...(stateVersion === null ? {} : { stateVersion }),
        }),
      );
      startHeartbeat();
    });
    ws.on('ping', touch);
    ws.on('pong', touch);
    ws.on('message', (data, isBinary) => {
      touch();
      if (isBinary) {
        const bytes = Array.isArray(data)
          ? Buffer.concat(data)
          : data instanceof ArrayBuffer
            ? Buffer.from(data)
            : data;
        return mux.receive(bytes);
      }
      const parsed = parseFrame(data, isBinary);
      if (!parsed.ok) {
        logger.warn({ reason: parsed.reason }, 'ignored a malformed control frame');
        return;
      }
      try {
        dispatch(parsed.message);
      } catch (e) {
        // A handler failing (e.g. the disk is full) must not take the event loop down with it.
        logger.error({ err: e, command: parsed.message.command }, 'handling a control message failed');
      }
    });
    ws.on('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_REFUSAL_BODY_BYTES) chunks.push(chunk);
      });
      response.on('error', () => undefined);
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        settle({
          kind: 'refused',
          status,
          error: errorFromEnvelope(status, parseBody(Buffer.concat(chunks)), response.headers['retry-after']),
        });
        ws.terminate();
      });
    });
    ws.on('error', (err) => logger.debug({ err }, 'control channel error'));
    ws.on('close', (code, reason) =>
      settle({ kind: 'closed', code, reason: reason.toString('utf8'), welcomed }),
    );

    function dispatch(message: WsMessage) {
      const checked = checkServerFrame(message);
      if (!checked.ok) return refuse(message, checked.unknownCommand, checked.problem);
      const frame = checked.frame;
      switch (frame.command) {
        case ServerCommands.welcome:
          welcomed = true;
          if (frame.data.heartbeatIntervalMs > 0 && frame.data.heartbeatIntervalMs !== heartbeatMs) {
            heartbeatMs = frame.data.heartbeatIntervalMs;
            startHeartbeat();
          }
          logger.info(
            { status: frame.data.status, stateVersion: frame.data.stateVersion },
            'control channel connected',
          );
          return handlers.onWelcome(frame.data);
        case ServerCommands.heartbeat:
          // A reply to one of ours needs no answer; one the server starts gets an ack.
          if (!sentHeartbeats.delete(frame.id)) send(ackFrame(frame.id, { ok: true }));
          return;
        case ServerCommands.stateChanged:
          handlers.onStateChanged(frame.data.stateVersion);
          return send(ackFrame(frame.id, { ok: true }));
        case ServerCommands.requestInventory:
          handlers.onRequestInventory().then(
            () => send(ackFrame(frame.id, { ok: true })),
            (e: unknown) => send(ackFrame(frame.id, { ok: false, error: errorSummary(e) })),
          );
          return;
        case ServerCommands.rollback:
        case ServerCommands.restart: {
          const onAppAction = handlers.onAppAction;
          if (!onAppAction) return send(ackFrame(frame.id, { ok: false, error: UPDATES_DISABLED }));
          onAppAction(frame.command, frame.data.app).then(
            () => send(ackFrame(frame.id, { ok: true })),
            (e: unknown) => send(ackFrame(frame.id, { ok: false, error: errorSummary(e) })),
          );
          return;
        }
        case ServerCommands.logs:
          return send(logsResultFrame(frame.id, readLogs(frame.data)));
        case ServerCommands.control: {
          const remote = handlers.remote;
          if (!remote) return send(ackFrame(frame.id, { ok: false, error: UPDATES_DISABLED }));
          const { app, action, service } = frame.data;
          remote.control(app, action, service).then(
            () => send(ackFrame(frame.id, { ok: true })),
            (e: unknown) => send(ackFrame(frame.id, { ok: false, error: errorSummary(e) })),
          );
          return;
        }
        case ServerCommands.stats: {
          const remote = handlers.remote;
          const app = frame.data.app;
          const answer = (data: AgentFrameDataOf<'stats-result'>) => send(statsFrame(frame.id, data));
          if (!remote) return answer({ error: UPDATES_DISABLED });
          remote.stats(app).then(
            (services) => answer({ app, services }),
            (e: unknown) => {
              const error = errorSummary(e, 1024);
              answer({ error: { code: error.code.slice(0, 64), message: error.message } });
            },
          );
          return;
        }
        case ServerCommands.ack:
          return;
        case ServerCommands.error:
          return logger.warn({ data: frame.data }, 'the server reported an error on the control channel');
      }
    }

    /** A frame the protocol does not allow: said so to the server, except where no answer is due. */
    function refuse(message: WsMessage, unknownCommand: boolean, problem: string) {
      if (unknownCommand) {
        logger.warn({ command: message.command }, 'ignored an unknown control command');
        return send(
          ackFrame(message.id, { ok: false, error: { code: 'FLT_BAD_REQUEST', message: problem } }),
        );
      }
      switch (message.command) {
        case ServerCommands.welcome:
        case ServerCommands.ack:
        case ServerCommands.error:
          return logger.warn(
            { id: message.id, command: message.command, problem },
            'ignored a malformed frame',
          );
        case ServerCommands.stats:
          return send(
            statsFrame(message.id, { error: { code: 'FLT_VALIDATION', message: problem.slice(0, 1024) } }),
          );
        case ServerCommands.logs:
          return send(
            logsResultFrame(message.id, {
              error: { code: 'FLT_VALIDATION', message: problem.slice(0, 1024) },
            }),
          );
        default:
          return send(
            ackFrame(message.id, { ok: false, error: { code: 'FLT_VALIDATION', message: problem } }),
          );
      }
    }

    function readLogs(request: LogsRequestData): AppLogs | LogsErrorData {
      if (!handlers.onLogs) return { error: UPDATES_DISABLED };
      try {
        return handlers.onLogs(request);
      } catch (e) {
        const error = errorSummary(e, 1024);
        return { error: { code: error.code.slice(0, 64), message: error.message } };
      }
    }
  });
}

function statsFrame(id: string, data: AgentFrameDataOf<'stats-result'>): string {
  return frame(id, AgentCommands.statsResult, data);
}

function parseBody(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return bytes.toString('utf8').slice(0, 200);
  }
}
