/** Control-channel frames: `{ id, command, data }` JSON text, checked against the protocol. */
import { AgentCommands, WS_MAX_FRAME_BYTES, WsMessage } from '@flotilla/protocol';
import type { AckData } from '@flotilla/protocol';
import type { RawData } from 'ws';
import { matches, schemaProblems } from '../util/schema.js';

export type ParsedFrame = { ok: true; message: WsMessage } | { ok: false; reason: string };

export function parseFrame(data: RawData, isBinary: boolean): ParsedFrame {
  if (isBinary) return { ok: false, reason: 'binary frame' };
  const bytes = Array.isArray(data)
    ? Buffer.concat(data)
    : data instanceof ArrayBuffer
      ? Buffer.from(data)
      : data;
  if (bytes.length > WS_MAX_FRAME_BYTES)
    return { ok: false, reason: `frame larger than ${WS_MAX_FRAME_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!matches(WsMessage, value))
    return { ok: false, reason: `not a message: ${schemaProblems(WsMessage, value, 3).join('; ')}` };
  return { ok: true, message: value };
}

export function ackFrame(id: string, result: AckData): string {
  return JSON.stringify({ id, command: AgentCommands.ack, data: result });
}

export function frame(id: string, command: string, data: unknown): string {
  return JSON.stringify({ id, command, data });
}
