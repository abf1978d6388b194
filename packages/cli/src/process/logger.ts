/**
 * The daemons' pino logger. Pretty output is pino-pretty used as a stream in this process (not a
 * worker-thread transport), so log lines reach the sink in order with the rest of the output and
 * nothing is lost when the process exits.
 */
import { destination as fileDestination, pino } from 'pino';
import type { Logger } from 'pino';
import { LOG_REDACT_PATHS } from '@flotilla/protocol';
import { Writable } from 'node:stream';
import type { TextSink } from '../io.js';

export type LogFormat = 'pretty' | 'json';

/** Paths pino replaces wherever they appear in a log line: no secret ever reaches a log. */
const REDACT = [...LOG_REDACT_PATHS];

export interface LoggerOptions {
  level: string;
  format: LogFormat;
  /** Where lines go: a text sink (stdout) or a file path (appended, created with its directory). */
  destination: TextSink | { file: string };
  /** Colors for pretty output; only when the sink is a terminal. */
  color?: boolean;
}

/** pino-pretty is loaded only for pretty output (an agent logging JSON never loads it). */
export async function createLogger(options: LoggerOptions): Promise<Logger> {
  const { destination } = options;
  const sink =
    'file' in destination
      ? fileDestination({ dest: destination.file, mkdir: true, append: true, sync: true })
      : asStream(destination);
  const pretty = options.format === 'pretty' ? (await import('pino-pretty')).default : null;
  const stream =
    pretty !== null
      ? pretty({
          destination: sink,
          colorize: options.color === true,
          sync: true,
          translateTime: 'SYS:HH:MM:ss.l',
        })
      : sink;
  return pino({ level: options.level, redact: { paths: REDACT, censor: '[redacted]' } }, stream);
}

/** pino-pretty pipes into its destination, so a plain text sink (tests) is wrapped in a stream. */
function asStream(sink: TextSink): NodeJS.WritableStream {
  if (isStream(sink)) return sink;
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      sink.write(chunk.toString());
      callback();
    },
  });
}

function isStream(sink: TextSink): sink is TextSink & NodeJS.WritableStream {
  return typeof (sink as Partial<NodeJS.WritableStream>).on === 'function';
}

/**
 * `--log-format` when given (flag, then `FLOTILLA_LOG_FORMAT`), else pretty on a terminal and the
 * configured format (json by default) otherwise.
 */
export function chooseLogFormat(
  explicit: string | undefined,
  configured: LogFormat,
  isTTY: boolean,
): LogFormat {
  if (explicit === 'pretty' || explicit === 'json') return explicit;
  return isTTY ? 'pretty' : configured;
}
