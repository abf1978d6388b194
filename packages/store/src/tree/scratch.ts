/**
 * Reusable read buffers. Verifying a file means reading it whole (or 4 MiB at a time) into memory
 * and hashing it; a fresh buffer per file makes the kernel hand out fresh pages, and on a virtual
 * machine that is the dearest part (about 15 µs per 4 KiB page measured on the 2-core bench
 * machine: a 10 MB file cost 40 ms to read into new memory, 3 ms into memory touched before).
 * Buffers are handed back after use and kept for the next file, up to a bound, and dropped once
 * the pool has been idle a while (an idle agent keeps no scratch memory).
 */
const KEEP_BUFFERS = 8;
/** A buffer larger than this is not kept after use (a one-off large file should not pin its memory). */
const KEEP_MAX_BYTES = 16 * 1024 * 1024;
const IDLE_DROP_MS = 10_000;

export class ScratchPool {
  private readonly free: Buffer[] = [];
  private idle: NodeJS.Timeout | null = null;

  /** A buffer of at least `size` bytes (its first `size` bytes are what the caller uses). */
  take(size: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++)
      if (this.free[i]!.length >= size && (best < 0 || this.free[i]!.length < this.free[best]!.length))
        best = i;
    if (best >= 0) return this.free.splice(best, 1)[0]!;
    // Powers of two, so that files of slowly increasing sizes do not each allocate again.
    return Buffer.allocUnsafeSlow(Math.max(64 * 1024, 2 ** Math.ceil(Math.log2(Math.max(size, 1)))));
  }

  give(buffer: Buffer): void {
    if (buffer.length > KEEP_MAX_BYTES) return;
    this.dropWhenIdle();
    if (this.free.length >= KEEP_BUFFERS) {
      // Keep the larger ones: a small request can use a large buffer, not the other way round.
      let smallest = 0;
      for (let i = 1; i < this.free.length; i++)
        if (this.free[i]!.length < this.free[smallest]!.length) smallest = i;
      if (this.free[smallest]!.length >= buffer.length) return;
      this.free.splice(smallest, 1);
    }
    this.free.push(buffer);
  }

  private dropWhenIdle(): void {
    if (this.idle !== null) this.idle.refresh();
    else {
      this.idle = setTimeout(() => {
        this.idle = null;
        this.free.length = 0;
      }, IDLE_DROP_MS);
      this.idle.unref();
    }
  }

  /** Runs `use` with a buffer of at least `size` bytes, handed back afterwards. */
  async with<T>(size: number, use: (buffer: Buffer) => Promise<T>): Promise<T> {
    const buffer = this.take(size);
    try {
      return await use(buffer);
    } finally {
      this.give(buffer);
    }
  }

  withSync<T>(size: number, use: (buffer: Buffer) => T): T {
    const buffer = this.take(size);
    try {
      return use(buffer);
    } finally {
      this.give(buffer);
    }
  }
}

/** The pool the tree code shares (one process-wide: buffers outlive a single materialize). */
export const scratch = new ScratchPool();
