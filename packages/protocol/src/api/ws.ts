/**
 * The WebSocket control channel (`GET /api/v1/device/ws`, bearer device token). Every frame is a
 * JSON text message `{ "id", "command", "data" }`; a reply carries the id of the message it answers.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { DeviceStatus } from './device.js';
import { Facts } from './common.js';

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
