/** Control-channel frames: `{ id, command, data }` JSON text, checked against the protocol. */
import { AgentCommands, WS_MAX_FRAME_BYTES, parseWsMessage } from '@flotilla/protocol';
import type { AckData, AgentCommand, AgentFrameDataOf, WsMessage } from '@flotilla/protocol';
import type { RawData } from 'ws';

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
  const parsed = parseWsMessage(bytes.toString('utf8'));
  return parsed.ok ? parsed : { ok: false, reason: parsed.problem };
}

export function ackFrame(id: string, result: AckData): string {
  return frame(id, AgentCommands.ack, result);
}

/** A frame the agent sends; the protocol's frame table types `data` by command. */
export function frame<C extends AgentCommand>(id: string, command: C, data: AgentFrameDataOf<C>): string {
  return JSON.stringify({ id, command, data });
}
