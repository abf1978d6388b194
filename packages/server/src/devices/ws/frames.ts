/** A device's frames checked against the protocol's frame table (bodies are never coerced). */
import { FlotillaError, WS_MAX_FRAME_BYTES, checkAgentFrame, parseWsMessage } from '@flotilla/protocol';
import type { AgentFrame, WsMessage } from '@flotilla/protocol';

/** Parses one text frame; throws FLT_BAD_JSON / FLT_JSON_TOO_DEEP / FLT_VALIDATION / FLT_BODY_TOO_LARGE. */
export function parseFrame(raw: Buffer, isBinary: boolean): WsMessage {
  if (raw.length > WS_MAX_FRAME_BYTES) {
    throw new FlotillaError('FLT_BODY_TOO_LARGE', `frames are limited to ${WS_MAX_FRAME_BYTES} bytes`);
  }
  if (isBinary) throw new FlotillaError('FLT_BAD_REQUEST', 'frames must be JSON text, not binary');
  const parsed = parseWsMessage(raw.toString('utf8'));
  if (!parsed.ok) throw new FlotillaError(parsed.code, parsed.problem);
  return parsed.message;
}

/** The message as the agent frame its command names; FLT_VALIDATION for unknown commands or bad data. */
export function agentFrame(message: WsMessage): AgentFrame {
  const checked = checkAgentFrame(message);
  if (!checked.ok) throw new FlotillaError('FLT_VALIDATION', checked.problem);
  return checked.frame;
}

/** The id of a frame that failed validation, if it had a usable one (to address the error reply). */
export function idOfInvalidFrame(raw: Buffer): string | undefined {
  try {
    const value: unknown = JSON.parse(raw.toString('utf8'));
    if (value !== null && typeof value === 'object' && 'id' in value) {
      const id = value.id;
      if (typeof id === 'string' && id.length >= 1 && id.length <= 64) return id;
    }
  } catch {
    // not JSON: no id to answer
  }
  return undefined;
}
