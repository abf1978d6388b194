/** The `logs-result` reply, kept within one control frame (the server closes on larger ones). */
import { LogCommands, WS_MAX_FRAME_BYTES } from '@flotilla/protocol';
import type { AppLogs, LogsErrorData } from '@flotilla/protocol';

/** Room left for the frame's id, command and JSON punctuation. */
const ENVELOPE_BYTES = 1024;

/**
 * Serializes the reply; logs too large for a frame after JSON escaping keep their newest part (the
 * longest suffix that fits, found by bisection) and are marked truncated.
 */
export function logsResultFrame(
  id: string,
  result: AppLogs | LogsErrorData,
  maxFrameBytes = WS_MAX_FRAME_BYTES,
): string {
  const limit = maxFrameBytes - ENVELOPE_BYTES;
  const serialize = (data: AppLogs | LogsErrorData) =>
    JSON.stringify({ id, command: LogCommands.logsResult, data });
  const whole = serialize(result);
  if (!('text' in result) || Buffer.byteLength(whole) <= limit) return whole;
  const { text } = result;
  const withSuffix = (keep: number) => {
    let start = text.length - keep;
    // Never start on the second half of a surrogate pair.
    const code = text.charCodeAt(start);
    if (code >= 0xdc00 && code <= 0xdfff) start += 1;
    return serialize({ ...result, text: text.slice(start), truncated: true });
  };
  let fits = 0;
  let tooBig = text.length;
  while (tooBig - fits > 1) {
    const mid = Math.floor((fits + tooBig) / 2);
    if (Buffer.byteLength(withSuffix(mid)) <= limit) fits = mid;
    else tooBig = mid;
  }
  return withSuffix(fits);
}
