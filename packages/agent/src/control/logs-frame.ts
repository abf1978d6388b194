/** The `logs-result` reply, kept within one control frame (the server closes on larger ones). */
import { LogCommands, WS_MAX_FRAME_BYTES } from '@flotilla/protocol';
import type { AppLogs, LogsErrorData } from '@flotilla/protocol';

/** Room left for the frame's id, command and JSON punctuation. */
const ENVELOPE_BYTES = 1024;

/**
 * Serializes the reply; logs too large for a frame (after JSON escaping) lose their oldest part and
 * are marked truncated. Each pass drops at least as many characters as the frame is over.
 */
export function logsResultFrame(
  id: string,
  result: AppLogs | LogsErrorData,
  maxFrameBytes = WS_MAX_FRAME_BYTES,
): string {
  const limit = maxFrameBytes - ENVELOPE_BYTES;
  if (!('text' in result)) return JSON.stringify({ id, command: LogCommands.logsResult, data: result });
  let logs = result;
  for (;;) {
    const frame = JSON.stringify({ id, command: LogCommands.logsResult, data: logs });
    const excess = Buffer.byteLength(frame) - limit;
    if (excess <= 0) return frame;
    let cut = Math.min(excess, logs.text.length);
    // Never leave half of a surrogate pair at the start.
    const code = logs.text.charCodeAt(cut);
    if (code >= 0xdc00 && code <= 0xdfff) cut += 1;
    logs = { ...logs, text: logs.text.slice(cut), truncated: true };
  }
}
