/**
 * The WebSocket control channel (`GET /api/v1/device/ws`, bearer device token). Every frame is a
 * JSON text message `{ "id", "command", "data" }`; a reply carries the id of the message it answers.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { DeviceStatus } from './device.js';
import { Facts } from './common.js';
import { AppName } from '../tuf/target.js';

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

/** Commands the server sends. */
export const ServerCommands = {
  welcome: 'welcome',
  heartbeat: 'heartbeat',
  stateChanged: 'state-changed',
  requestInventory: 'request-inventory',
  ack: 'ack',
  error: 'error',
} as const;

/** Commands the agent sends. */
export const AgentCommands = {
  hello: 'hello',
  heartbeat: 'heartbeat',
  inventory: 'inventory',
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
