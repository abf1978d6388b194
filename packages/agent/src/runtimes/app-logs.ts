/** The tail of a process app's captured stdout/stderr, as an operator reads it remotely. */
import { join } from 'node:path';
import type { AppLogs, LogStream } from '@flotilla/protocol';
import { cutTail, readLogTailBytes } from './rotating-log.js';

/**
 * Reads the last `maxBytes` of `stdout`, `stderr`, or `both`: stdout's tail then stderr's, each under
 * a `==> name <==` heading as `tail` prints several files (the headings are not counted), stdout
 * getting half the budget or more when stderr needs less. Missing files read as empty: an app that
 * never wrote has no log yet.
 */
export function readAppLogs(logDir: string, app: string, stream: LogStream, maxBytes: number): AppLogs {
  if (stream !== 'both') {
    const tail = readLogTailBytes(join(logDir, `${stream}.log`), maxBytes);
    return { app, text: tail.bytes.toString('utf8'), truncated: tail.truncated };
  }
  const out = readLogTailBytes(join(logDir, 'stdout.log'), maxBytes);
  const err = readLogTailBytes(join(logDir, 'stderr.log'), maxBytes);
  const outCut = cutTail(out.bytes, Math.max(maxBytes - err.bytes.length, Math.floor(maxBytes / 2)));
  const errCut = cutTail(err.bytes, maxBytes - outCut.bytes.length);
  return {
    app,
    text: `==> stdout <==\n${section(outCut.bytes)}==> stderr <==\n${section(errCut.bytes)}`,
    truncated: out.truncated || err.truncated || outCut.truncated || errCut.truncated,
  };
}

function section(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text === '' || text.endsWith('\n') ? text : `${text}\n`;
}
