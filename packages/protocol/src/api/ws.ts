/**
 * The WebSocket control channel (`GET /api/v1/device/ws`, bearer device token). Every text frame is
 * a JSON message `{ "id", "command", "data" }`; a reply carries the id of the message it answers.
 * Binary frames carry remote-access streams (tunnels, exec, followed logs; see remote.ts).
 */
import { Type } from '@sinclair/typebox';
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { DeviceStatus } from './device.js';
import { Facts } from './common.js';
import { AppActionData } from './runtime-config.js';
import { AppName } from '../tuf/target.js';
import { MAX_JSON_DEPTH, jsonDepthExceeds } from '../json-depth.js';
import { ensureFormats } from '../formats.js';
import { ControlRequestData, StatsRequestData, StatsResultData } from './remote.js';

export const WsMessage = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64 }),
    command: Type.String({ minLength: 1, maxLength: 64 }),
    data: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);
export type WsMessage = Static<typeof WsMessage>;

/** Maximum size of one control frame in bytes; larger frames close the connection. */
export const WS_MAX_FRAME_BYTES = 256 * 1024;

/** Close codes (4000–4999 are application codes per RFC 6455). */
export const WsClose = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 4000,
  unauthenticated: 4001,
  deviceRevoked: 4003,
  deviceRejected: 4004,
  replaced: 4009,
} as const;

/** Commands the server sends (`ServerFrameData` says what each carries). */
export const ServerCommands = {
  welcome: 'welcome',
  heartbeat: 'heartbeat',
  stateChanged: 'state-changed',
  requestInventory: 'request-inventory',
  rollback: 'rollback',
  restart: 'restart',
  logs: 'logs',
  /** Start, stop or restart an app or one service (docs/remote-access.md); answered by `ack`. */
  control: 'control',
  /** Each service's state and usage; answered by `stats-result`. */
  stats: 'stats',
  ack: 'ack',
  error: 'error',
} as const;

/** Commands the agent sends (`AgentFrameData` says what each carries). */
export const AgentCommands = {
  hello: 'hello',
  heartbeat: 'heartbeat',
  inventory: 'inventory',
  logsResult: 'logs-result',
  statsResult: 'stats-result',
  ack: 'ack',
} as const;

export const WelcomeData = Type.Object({
  deviceId: Type.String(),
  status: DeviceStatus,
  stateVersion: Type.Integer(),
  heartbeatIntervalMs: Type.Integer(),
});
export type WelcomeData = Static<typeof WelcomeData>;

export const HelloData = Type.Object({
  agentVersion: Type.String({ maxLength: 64 }),
  stateVersion: Type.Optional(Type.Integer()),
});
export type HelloData = Static<typeof HelloData>;

export const StateChangedData = Type.Object({ stateVersion: Type.Integer() });
export type StateChangedData = Static<typeof StateChangedData>;

export const InventoryData = Type.Object({ facts: Facts });
export type InventoryData = Static<typeof InventoryData>;

export const AckData = Type.Object({
  ok: Type.Boolean(),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});
export type AckData = Static<typeof AckData>;

/**
 * Reading an app's logs (docs/updates.md "Reading an app's logs"): the server sends `logs`, the agent
 * answers `logs-result` with the same id, carrying either the logs or `{ error }`.
 */
export const LogCommands = { logs: 'logs', logsResult: 'logs-result' } as const;

/** Largest tail an operator may ask for (bytes). The reply must also fit in one control frame. */
export const LOGS_MAX_BYTES = 1024 * 1024;
/** The tail read when the operator names no size (bytes). */
export const LOGS_DEFAULT_BYTES = 64 * 1024;

export const LogStream = Type.Union([Type.Literal('stdout'), Type.Literal('stderr'), Type.Literal('both')]);
export type LogStream = Static<typeof LogStream>;

export const LogsRequestData = Type.Object(
  {
    app: AppName,
    /** Default `both`: stdout's tail, then stderr's, each under a `==> stream <==` heading. */
    stream: Type.Optional(LogStream),
    maxBytes: Type.Integer({ minimum: 1, maximum: LOGS_MAX_BYTES }),
  },
  { additionalProperties: false },
);
export type LogsRequestData = Static<typeof LogsRequestData>;

/** The tail of an app's logs; `truncated` when older output exists that was not included. */
export const AppLogs = Type.Object({
  app: AppName,
  text: Type.String(),
  truncated: Type.Boolean(),
});
export type AppLogs = Static<typeof AppLogs>;

export const LogsErrorData = Type.Object({
  error: Type.Object({ code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 1024 }) }),
});
export type LogsErrorData = Static<typeof LogsErrorData>;

export const LogsResultData = Type.Union([AppLogs, LogsErrorData]);
export type LogsResultData = Static<typeof LogsResultData>;

/** The server's `error` frame: a refused frame (its id when it had one) or a failed command. */
export const WsErrorData = Type.Object({ code: Type.String({ maxLength: 64 }), message: Type.String() });
export type WsErrorData = Static<typeof WsErrorData>;

/** Data a side ignores (heartbeats, request-inventory): anything, usually `{}`. */
const IgnoredData = Type.Unknown();

/** What each server-to-agent command carries in `data`. */
export const ServerFrameData = {
  [ServerCommands.welcome]: WelcomeData,
  [ServerCommands.heartbeat]: IgnoredData,
  [ServerCommands.stateChanged]: StateChangedData,
  [ServerCommands.requestInventory]: IgnoredData,
  [ServerCommands.rollback]: AppActionData,
  [ServerCommands.restart]: AppActionData,
  [ServerCommands.logs]: LogsRequestData,
  [ServerCommands.control]: ControlRequestData,
  [ServerCommands.stats]: StatsRequestData,
  [ServerCommands.ack]: AckData,
  [ServerCommands.error]: WsErrorData,
} as const satisfies Record<ServerCommand, TSchema>;

/** What each agent-to-server command carries in `data`. */
export const AgentFrameData = {
  [AgentCommands.hello]: HelloData,
  [AgentCommands.heartbeat]: IgnoredData,
  [AgentCommands.inventory]: InventoryData,
  [AgentCommands.logsResult]: LogsResultData,
  [AgentCommands.statsResult]: StatsResultData,
  [AgentCommands.ack]: AckData,
} as const satisfies Record<AgentCommand, TSchema>;

export type ServerCommand = (typeof ServerCommands)[keyof typeof ServerCommands];
export type AgentCommand = (typeof AgentCommands)[keyof typeof AgentCommands];

type FrameOf<Table extends Record<string, TSchema>> = {
  [C in keyof Table & string]: { id: string; command: C; data: Static<Table[C]> };
}[keyof Table & string];

/** A frame the server sends, discriminated by `command`. */
export type ServerFrame = FrameOf<typeof ServerFrameData>;
/** A frame the agent sends, discriminated by `command`. */
export type AgentFrame = FrameOf<typeof AgentFrameData>;
/** The `data` of server command `C`. */
export type ServerFrameDataOf<C extends ServerCommand> = Static<(typeof ServerFrameData)[C]>;
/** The `data` of agent command `C`. */
export type AgentFrameDataOf<C extends AgentCommand> = Static<(typeof AgentFrameData)[C]>;

/** A checked frame, or why it is not one: a command this side does not know, or invalid data. */
export type FrameCheck<F> =
  | { ok: true; frame: F }
  | { ok: false; unknownCommand: true; problem: string }
  | { ok: false; unknownCommand: false; problem: string };

function checkFrameData<F>(table: Readonly<Record<string, TSchema>>, message: WsMessage): FrameCheck<F> {
  ensureFormats();
  const schema = Object.prototype.hasOwnProperty.call(table, message.command)
    ? table[message.command]
    : undefined;
  if (schema === undefined)
    return { ok: false, unknownCommand: true, problem: `unknown command "${message.command}"` };
  if (Value.Check(schema, message.data)) return { ok: true, frame: message as F };
  const first = Value.Errors(schema, message.data).First();
  const where = first ? `data${first.path.replace(/\//g, '.')}` : 'data';
  return {
    ok: false,
    unknownCommand: false,
    problem: `invalid ${message.command}: ${where}: ${first?.message ?? 'is invalid'}`,
  };
}

/** Checks a message (already an envelope `{id, command, data}`) the agent received from the server. */
export function checkServerFrame(message: WsMessage): FrameCheck<ServerFrame> {
  return checkFrameData<ServerFrame>(ServerFrameData, message);
}

/** Checks a message (already an envelope `{id, command, data}`) the server received from an agent. */
export function checkAgentFrame(message: WsMessage): FrameCheck<AgentFrame> {
  return checkFrameData<AgentFrame>(AgentFrameData, message);
}

/** A text frame read as an envelope, or the stable code and reason it is not one. */
export type WsMessageParse =
  | { ok: true; message: WsMessage }
  | { ok: false; code: 'FLT_JSON_TOO_DEEP' | 'FLT_BAD_JSON' | 'FLT_VALIDATION'; problem: string };

/**
 * Reads one text frame as `{ id, command, data }` (both ends: the size limit, WS_MAX_FRAME_BYTES, is
 * the caller's check on the raw bytes). Nesting is bounded before parsing (MAX_JSON_DEPTH).
 */
export function parseWsMessage(text: string): WsMessageParse {
  if (jsonDepthExceeds(text))
    return {
      ok: false,
      code: 'FLT_JSON_TOO_DEEP',
      problem: `frames may nest at most ${MAX_JSON_DEPTH} deep`,
    };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: 'FLT_BAD_JSON', problem: 'the frame is not valid JSON' };
  }
  if (Value.Check(WsMessage, value)) return { ok: true, message: value };
  const first = Value.Errors(WsMessage, value).First();
  return {
    ok: false,
    code: 'FLT_VALIDATION',
    problem: `not a message {id, command, data}: ${first ? `${first.path || '(root)'} ${first.message}` : 'is invalid'}`,
  };
}
