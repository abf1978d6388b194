/**
 * Remote access over the device's control WebSocket (docs/remote-access.md): service commands and
 * stats as JSON control frames, and streams (tunnels, exec, followed logs) multiplexed as binary
 * frames, each stream with its own flow-control window.
 *
 * A binary frame is `type (u8) | stream id (u32, big-endian) | payload`:
 *
 * | type          | payload                                  | sent by                         |
 * | ------------- | ---------------------------------------- | ------------------------------- |
 * | 1 `open`      | UTF-8 JSON `StreamOpen`                  | server only (it picks the id)   |
 * | 2 `data`      | bytes (stdout, tunnel bytes, log lines)  | both                            |
 * | 3 `data-err`  | bytes (stderr of exec)                   | agent                           |
 * | 4 `window`    | u32: bytes the peer may send in addition | both                            |
 * | 5 `eof`       | none: the sender sends no more data      | both                            |
 * | 6 `close`     | optional UTF-8 JSON `StreamClose`        | both; ends the stream both ways |
 * | 7 `opened`    | none: the source is ready (TCP connected, command started, log open) | agent |
 *
 * Each side may send at most MUX_INITIAL_WINDOW data bytes on a stream before the receiver grants
 * more with `window` (granted when the bytes were passed on, e.g. written to a socket), so neither
 * side ever buffers more than one window per stream. Sending beyond the window, a window above
 * MUX_MAX_WINDOW, a payload above MUX_MAX_DATA, or a frame for an unknown stream is refused.
 */
import { Type } from '@sinclair/typebox';
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AppName } from '../tuf/target.js';
import { ensureFormats } from '../formats.js';

export const MuxFrameType = {
  open: 1,
  data: 2,
  dataErr: 3,
  window: 4,
  eof: 5,
  close: 6,
  opened: 7,
} as const;
export type MuxFrameType = (typeof MuxFrameType)[keyof typeof MuxFrameType];

/** Header bytes before the payload. */
export const MUX_HEADER_BYTES = 5;
/** Largest data payload in one frame. */
export const MUX_MAX_DATA = 32 * 1024;
/** Largest `open` or `close` payload. */
export const MUX_MAX_CONTROL = 16 * 1024;
/** The send window each side starts with, per stream (bytes). */
export const MUX_INITIAL_WINDOW = 256 * 1024;
/** A window may never grow beyond this (a `window` frame that would is refused). */
export const MUX_MAX_WINDOW = 16 * 1024 * 1024;
/** Streams open at once on one device connection. */
export const MUX_MAX_STREAMS = 64;
/** Largest stream id (ids are 1 … this). */
export const MUX_MAX_STREAM_ID = 0x7fffffff;

export interface MuxFrame {
  type: MuxFrameType;
  stream: number;
  payload: Uint8Array;
}

export type MuxDecode = { ok: true; frame: MuxFrame } | { ok: false; stream: number | null; problem: string };

const TYPES: ReadonlySet<number> = new Set(Object.values(MuxFrameType));

export function encodeMuxFrame(
  type: MuxFrameType,
  stream: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const bytes = new Uint8Array(MUX_HEADER_BYTES + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, type);
  view.setUint32(1, stream);
  bytes.set(payload, MUX_HEADER_BYTES);
  return bytes;
}

export function encodeWindow(stream: number, increment: number): Uint8Array {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, increment);
  return encodeMuxFrame(MuxFrameType.window, stream, payload);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeJsonFrame(type: MuxFrameType, stream: number, value: unknown): Uint8Array {
  return encodeMuxFrame(type, stream, encoder.encode(JSON.stringify(value)));
}

/** Reads one binary frame; checks the header, the payload size its type allows, and a window's value. */
export function decodeMuxFrame(bytes: Uint8Array): MuxDecode {
  if (bytes.length < MUX_HEADER_BYTES)
    return { ok: false, stream: null, problem: 'frame shorter than its header' };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint8(0);
  const stream = view.getUint32(1);
  const payload = bytes.subarray(MUX_HEADER_BYTES);
  if (stream < 1 || stream > MUX_MAX_STREAM_ID)
    return { ok: false, stream: null, problem: `stream id ${stream} out of range` };
  if (!TYPES.has(type)) return { ok: false, stream, problem: `unknown frame type ${type}` };
  const t = type as MuxFrameType;
  if ((t === MuxFrameType.data || t === MuxFrameType.dataErr) && payload.length > MUX_MAX_DATA)
    return { ok: false, stream, problem: `data frames carry at most ${MUX_MAX_DATA} bytes` };
  if ((t === MuxFrameType.open || t === MuxFrameType.close) && payload.length > MUX_MAX_CONTROL)
    return { ok: false, stream, problem: `open and close frames carry at most ${MUX_MAX_CONTROL} bytes` };
  if (t === MuxFrameType.window) {
    if (payload.length !== 4) return { ok: false, stream, problem: 'a window frame carries 4 bytes' };
    const increment = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
    if (increment < 1 || increment > MUX_MAX_WINDOW)
      return { ok: false, stream, problem: `window increment ${increment} out of range` };
  }
  if ((t === MuxFrameType.eof || t === MuxFrameType.opened) && payload.length !== 0)
    return { ok: false, stream, problem: 'eof and opened frames carry nothing' };
  return { ok: true, frame: { type: t, stream, payload } };
}

export function windowIncrement(frame: MuxFrame): number {
  return new DataView(frame.payload.buffer, frame.payload.byteOffset, 4).getUint32(0);
}

/** The JSON payload of an open or close frame checked against `schema`; null when it is not one. */
export function decodeJsonPayload<T extends TSchema>(payload: Uint8Array, schema: T): Static<T> | null {
  ensureFormats();
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    return null;
  }
  return Value.Check(schema, value) ? value : null;
}

const ServiceName = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' });
export { ServiceName };
const Port = Type.Integer({ minimum: 1, maximum: 65535 });

/** What a stream is for, sent in its `open` frame. */
export const StreamOpen = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('tunnel'),
      /** Without an app: a port on the device itself (127.0.0.1), if the agent allows it. */
      app: Type.Optional(AppName),
      service: Type.Optional(ServiceName),
      port: Port,
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('exec'),
      app: AppName,
      service: Type.Optional(ServiceName),
      argv: Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 256 }),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('logs'),
      app: AppName,
      service: Type.Optional(ServiceName),
      tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
      since: Type.Optional(Type.Integer({ minimum: 0 })),
      follow: Type.Boolean(),
    },
    { additionalProperties: false },
  ),
]);
export type StreamOpen = Static<typeof StreamOpen>;

/** Why a stream ended: an exec's exit code, or the error that ended it. Empty: a normal end. */
export const StreamClose = Type.Object(
  {
    exitCode: Type.Optional(Type.Integer()),
    error: Type.Optional(
      Type.Object({ code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 1024 }) }),
    ),
  },
  { additionalProperties: false },
);
export type StreamClose = Static<typeof StreamClose>;

/** One line of a followed log, as the agent sends it in a logs stream (newline-delimited JSON). */
export const RemoteLogLine = Type.Object({
  stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]),
  at: Type.Optional(Type.Integer()),
  service: Type.Optional(Type.String({ maxLength: 128 })),
  text: Type.String(),
});
export type RemoteLogLine = Static<typeof RemoteLogLine>;

export const ServiceAction = Type.Union([
  Type.Literal('start'),
  Type.Literal('stop'),
  Type.Literal('restart'),
]);
export type ServiceAction = Static<typeof ServiceAction>;

/** The server's `control` command: start, stop or restart an app or one of its services (answered by `ack`). */
export const ControlRequestData = Type.Object(
  { app: AppName, action: ServiceAction, service: Type.Optional(ServiceName) },
  { additionalProperties: false },
);
export type ControlRequestData = Static<typeof ControlRequestData>;

/** The server's `stats` command; the agent answers `stats-result`. */
export const StatsRequestData = Type.Object({ app: AppName }, { additionalProperties: false });
export type StatsRequestData = Static<typeof StatsRequestData>;

export const ServiceStats = Type.Object({
  service: Type.String({ maxLength: 128 }),
  state: Type.String({ maxLength: 64 }),
  health: Type.Union([
    Type.Literal('healthy'),
    Type.Literal('unhealthy'),
    Type.Literal('starting'),
    Type.Literal('none'),
  ]),
  restarts: Type.Integer({ minimum: 0 }),
  cpuPercent: Type.Optional(Type.Number({ minimum: 0 })),
  memoryBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  pid: Type.Optional(Type.Integer({ minimum: 1 })),
  containerId: Type.Optional(Type.String({ maxLength: 128 })),
  image: Type.Optional(Type.String({ maxLength: 512 })),
  startedAt: Type.Optional(Type.String({ maxLength: 64 })),
});
export type ServiceStats = Static<typeof ServiceStats>;

export const AppStats = Type.Object({
  app: AppName,
  services: Type.Array(ServiceStats, { maxItems: 256 }),
});
export type AppStats = Static<typeof AppStats>;

export const StatsResultData = Type.Union([
  AppStats,
  Type.Object({
    error: Type.Object({ code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 1024 }) }),
  }),
]);
export type StatsResultData = Static<typeof StatsResultData>;

// Operator routes (docs/remote-access.md).

/** `POST` (deployer): start, stop or restart an app or one service on a connected device. */
export const DEVICE_APP_CONTROL_ROUTE = '/api/v1/devices/:id/apps/:app/control';
export const AppControlRequest = Type.Object(
  { action: ServiceAction, service: Type.Optional(ServiceName) },
  { additionalProperties: false },
);
export type AppControlRequest = Static<typeof AppControlRequest>;

/** `GET` (viewer): each service's state, health, restarts, CPU and memory, read live. */
export const DEVICE_APP_STATS_ROUTE = '/api/v1/devices/:id/apps/:app/stats';

/** `GET` (deployer): log lines as newline-delimited JSON (`RemoteLogLine`), followed with `follow=true`. */
export const DEVICE_APP_LOG_STREAM_ROUTE = '/api/v1/devices/:id/apps/:app/log-stream';
export const LogStreamQuery = Type.Object(
  {
    service: Type.Optional(ServiceName),
    tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
    /** Epoch ms. */
    since: Type.Optional(Type.Integer({ minimum: 0 })),
    follow: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type LogStreamQuery = Static<typeof LogStreamQuery>;

/** WebSocket (admin): a command in the app's service, stdio carried as in docs/remote-access.md. */
export const DEVICE_EXEC_ROUTE = '/api/v1/devices/:id/exec';
export const ExecQuery = Type.Object(
  {
    app: AppName,
    service: Type.Optional(ServiceName),
    /** The command and its arguments, one `cmd` parameter each. */
    cmd: Type.Union([
      Type.String({ maxLength: 4096 }),
      Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 256 }),
    ]),
  },
  { additionalProperties: false },
);
export type ExecQuery = Static<typeof ExecQuery>;

/** WebSocket (admin): one TCP stream to `port` of the app's service, or of the device itself. */
export const DEVICE_TUNNEL_ROUTE = '/api/v1/devices/:id/tunnel';
export const TunnelQuery = Type.Object(
  { port: Port, app: Type.Optional(AppName), service: Type.Optional(ServiceName) },
  { additionalProperties: false },
);
export type TunnelQuery = Static<typeof TunnelQuery>;

/**
 * The operator's side of an exec or tunnel WebSocket: binary messages are `channel (u8) | bytes`
 * (0: stdin / stdout / tunnel bytes, 1: stderr), at most OPERATOR_MAX_MESSAGE bytes; text messages
 * are `OperatorStreamEvent` JSON.
 */
export const OperatorChannel = { data: 0, stderr: 1 } as const;
export const OPERATOR_MAX_MESSAGE = MUX_MAX_DATA + 1;

export const OperatorStreamEvent = Type.Union([
  Type.Object({ type: Type.Literal('opened') }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('eof') }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('exit'), exitCode: Type.Integer() }, { additionalProperties: false }),
  Type.Object(
    {
      type: Type.Literal('error'),
      code: Type.String({ maxLength: 64 }),
      message: Type.String({ maxLength: 1024 }),
    },
    { additionalProperties: false },
  ),
]);
export type OperatorStreamEvent = Static<typeof OperatorStreamEvent>;
