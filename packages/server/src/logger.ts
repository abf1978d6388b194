import pino from 'pino';
import type { Logger } from 'pino';
import { LOG_REDACT_PATHS } from '@flotilla/protocol';
import pretty from 'pino-pretty';
import type { ServerConfig } from './config.js';

/** Paths pino replaces with `[redacted]` wherever they appear in a log line. */
const REDACT = [...LOG_REDACT_PATHS];

/** The server's logger when the caller gives none: JSON lines, or human lines on stderr. */
export function createLogger(config: Pick<ServerConfig, 'logLevel' | 'logFormat'>): Logger {
  const options = {
    level: config.logLevel,
    redact: { paths: REDACT, censor: '[redacted]' },
    base: { component: 'server' },
  };
  if (config.logFormat === 'pretty') {
    return pino(options, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY }));
  }
  return pino(options);
}
