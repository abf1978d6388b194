/** Size-rotated log files: `<name>.log`, then `<name>.log.1` … `<name>.log.<keep>` (oldest dropped). */
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';

export class RotatingLog {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {
    this.fd = openSync(path, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }

  /** Appends; a file never grows past `maxBytes` (a large write is split across files). */
  write(bytes: Uint8Array): void {
    let rest = bytes;
    while (rest.length > 0) {
      if (this.size >= this.maxBytes) this.rotate();
      const part = rest.subarray(0, this.maxBytes - this.size);
      writeSync(this.fd, part);
      this.size += part.length;
      rest = rest.subarray(part.length);
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    closeSync(this.fd);
    rmSync(`${this.path}.${this.keep}`, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) {
      if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    }
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, 'a', 0o640);
    this.size = 0;
  }
}

/** The last `maxBytes` of a rotated log, oldest first, across its files (what an operator reads remotely). */
export function readLogTail(path: string, maxBytes: number, keep = 100): string {
  return readLogTailBytes(path, maxBytes, keep).bytes.toString('utf8');
}

/**
 * The last `maxBytes` bytes of a rotated log, oldest first; `truncated` when older bytes exist. The cut
 * never splits a UTF-8 character (its continuation bytes are dropped), so the text decodes cleanly.
 */
export function readLogTailBytes(
  path: string,
  maxBytes: number,
  keep = 100,
): { bytes: Buffer; truncated: boolean } {
  const parts: Buffer[] = [];
  let total = 0;
  for (let i = 0; i <= keep && total <= maxBytes; i++) {
    const file = i === 0 ? path : `${path}.${i}`;
    if (!existsSync(file)) break;
    const bytes = readFileSync(file);
    parts.unshift(bytes);
    total += bytes.length;
  }
  return cutTail(Buffer.concat(parts), maxBytes);
}

/** The last `maxBytes` of `bytes`, starting on a UTF-8 character boundary. */
export function cutTail(bytes: Buffer, maxBytes: number): { bytes: Buffer; truncated: boolean } {
  if (bytes.length <= maxBytes) return { bytes, truncated: false };
  let start = bytes.length - maxBytes;
  while (start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
  return { bytes: bytes.subarray(start), truncated: true };
}
