/**
 * Buffers written to a file about 1 MiB at a time (one writev instead of a write per buffer):
 * pulled blobs arrive in 16–64 KiB chunks and squashfs blocks are 128 KiB or less, so batching
 * cuts the calls (and their thread-pool round trips) by an order of magnitude.
 */
import type { FileHandle } from 'node:fs/promises';

const BATCH_BYTES = 1024 * 1024;

export class WriteBatch {
  #parts: Buffer[] = [];
  #bytes = 0;

  /** `position`: where the first buffer goes; null appends (a file opened with 'a'). */
  constructor(
    private readonly file: FileHandle,
    private position: number | null,
  ) {}

  /** Queues `bytes` (kept, not copied: the caller must not change them); writes when ~1 MiB. */
  async push(bytes: Buffer): Promise<void> {
    this.#parts.push(bytes);
    this.#bytes += bytes.length;
    if (this.#bytes >= BATCH_BYTES) await this.flush();
  }

  /** Writes what is queued, all of it (a short write is continued). */
  async flush(): Promise<void> {
    if (this.#bytes === 0) return;
    const parts = this.#parts;
    const total = this.#bytes;
    this.#parts = [];
    this.#bytes = 0;
    let done = (await this.file.writev(parts, this.#at(0))).bytesWritten;
    if (done < total) {
      const rest = Buffer.concat(parts, total);
      while (done < total)
        done += (await this.file.write(rest, done, total - done, this.#at(done))).bytesWritten;
    }
    if (this.position !== null) this.position += total;
  }

  #at(offset: number): number | undefined {
    return this.position === null ? undefined : this.position + offset;
  }
}
