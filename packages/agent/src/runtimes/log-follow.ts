/**
 * Reading and following a process app's rotated log files as lines (docs/remote-access.md
 * "Logs"): the last `tail` lines of each stream, then, with `follow`, every line written later,
 * across rotations (the file is renamed to `.1` and a new one opened: what is left in the renamed
 * file is read to its end before the new one). The files carry no per-line time: `since` keeps
 * only files (current or rotated) modified at or after it, and lines followed are stamped when read.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LogFollowOptions, LogLine } from './runtime.js';

/** Lines sent first when the operator names no tail. */
export const DEFAULT_TAIL_LINES = 100;
/** How often followed files are checked for new bytes (ms). */
export const FOLLOW_POLL_MS = 200;
/** A line longer than this is sent in parts. */
export const MAX_LINE_BYTES = 16 * 1024;
/** Rotated files read for a tail, at most. */
const MAX_ROTATED = 100;

type StreamName = 'stdout' | 'stderr';

/** The last `count` lines of a stream across its rotated files (oldest first), and where its current file ends. */
function tailLines(
  path: string,
  count: number,
  since: number | undefined,
  currentLimit: number | null,
): string[] {
  const lines: string[] = [];
  if (count === 0) return lines;
  for (let i = 0; i <= MAX_ROTATED && lines.length < count + 1; i++) {
    const file = i === 0 ? path : `${path}.${i}`;
    let st;
    try {
      st = statSync(file);
    } catch {
      break;
    }
    if (since !== undefined && st.mtimeMs < since) break;
    const text = readWholeText(file, i === 0 ? currentLimit : null);
    const parts = text.split('\n');
    if (parts[parts.length - 1] === '') parts.pop();
    lines.unshift(...parts);
  }
  return lines.slice(-count);
}

function readWholeText(file: string, limit: number | null): string {
  const fd = openSync(file, 'r');
  try {
    const size = Math.min(fstatSync(fd).size, limit ?? Number.MAX_SAFE_INTEGER);
    const buf = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buf, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buf.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Follows one log file from its current end. */
class Follower {
  private fd: number | null = null;
  private ino = 0;
  private position = 0;
  private partial = Buffer.alloc(0);

  constructor(
    private readonly path: string,
    private readonly stream: StreamName,
    private readonly onLine: (line: LogLine) => void,
  ) {
    this.reopen(true);
  }

  /** Reads what was appended; switches to the new file after a rotation. */
  poll(): void {
    if (this.fd === null) {
      this.reopen(false);
      if (this.fd === null) return;
    }
    this.drain();
    let current: number | null = null;
    try {
      current = statSync(this.path).ino;
    } catch {
      current = null;
    }
    if (current !== null && current !== this.ino) {
      // Rotated: the old file (now `.1`) was read to its end above; the new one from its start.
      closeSync(this.fd);
      this.fd = null;
      this.reopen(false);
      if (this.fd !== null) this.drain();
    }
  }

  /** Where following starts in the current file (the tail reads up to here); null: no file yet. */
  get start(): number | null {
    return this.fd === null ? null : this.position;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private reopen(atEnd: boolean): void {
    try {
      this.fd = openSync(this.path, 'r');
    } catch {
      this.fd = null;
      return;
    }
    const st = fstatSync(this.fd);
    this.ino = st.ino;
    this.position = atEnd ? st.size : 0;
  }

  private drain(): void {
    if (this.fd === null) return;
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = readSync(this.fd, buf, 0, buf.length, this.position);
      if (n === 0) return;
      this.position += n;
      this.split(buf.subarray(0, n));
    }
  }

  private split(bytes: Buffer): void {
    let data = this.partial.length > 0 ? Buffer.concat([this.partial, bytes]) : bytes;
    for (;;) {
      const nl = data.indexOf(0x0a);
      if (nl < 0) break;
      this.emit(data.subarray(0, nl));
      data = data.subarray(nl + 1);
    }
    while (data.length > MAX_LINE_BYTES) {
      this.emit(data.subarray(0, MAX_LINE_BYTES));
      data = data.subarray(MAX_LINE_BYTES);
    }
    this.partial = Buffer.from(data);
  }

  private emit(line: Buffer): void {
    this.onLine({ stream: this.stream, at: Date.now(), text: line.toString('utf8') });
  }
}

/**
 * Sends the tail of `stdout.log` and `stderr.log` (stdout's lines, then stderr's), then with
 * `follow` every new line until `options.signal` aborts.
 */
export async function followProcessLogs(
  logDir: string,
  options: LogFollowOptions,
  onLine: (line: LogLine) => void,
): Promise<void> {
  const streams: StreamName[] = ['stdout', 'stderr'];
  const tail = options.tail ?? DEFAULT_TAIL_LINES;
  // Followers are opened before the tail is read, and the tail stops where they start: no line
  // written in between is lost or sent twice.
  const followers = options.follow
    ? streams.map((s) => new Follower(join(logDir, `${s}.log`), s, onLine))
    : [];
  try {
    streams.forEach((s, i) => {
      const limit = followers[i]?.start ?? null;
      for (const text of tailLines(join(logDir, `${s}.log`), tail, options.since, limit))
        onLine({ stream: s, text });
    });
    if (!options.follow) return;
    const { signal } = options;
    while (!signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, FOLLOW_POLL_MS);
        signal.addEventListener('abort', done, { once: true });
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
      });
      for (const f of followers) f.poll();
    }
  } finally {
    for (const f of followers) f.close();
  }
}
