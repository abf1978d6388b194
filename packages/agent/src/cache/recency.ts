/**
 * When each cache item was last used, for least-recently-used eviction: kept in memory as reads and
 * writes happen, written to state.db (`chunk_use`) in one batched transaction a few seconds later,
 * off the update's path (thousands of upserts took a tenth of a small update). Eviction and close
 * flush first, so nothing they need is missing; a crash loses at most those seconds of recency,
 * which only orders eviction.
 */
import type { StateDatabase } from '../state/db.js';

export class Recency {
  private readonly touched = new Map<string, number>();
  private lastTouch = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private forgetStatement: ReturnType<StateDatabase['prepare']> | null = null;

  constructor(
    private readonly db: StateDatabase,
    /** Reports a deferred flush that failed (it is tried again at the next flush). */
    private readonly onFlushError?: (error: unknown) => void,
  ) {}

  /** Records a use of `id` now. */
  touch(id: string): void {
    // Strictly increasing, so that order survives several reads in one millisecond.
    this.lastTouch = Math.max(Date.now(), this.lastTouch + 1);
    this.touched.set(id, this.lastTouch);
  }

  /** Flushes `delayMs` from now (default 5 s) unless a flush is already due. */
  flushSoon(delayMs = 5000): void {
    if (this.flushTimer !== null) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      try {
        this.flush();
      } catch (error) {
        // state.db closed or unwritable: recency stays in memory for the next flush
        this.onFlushError?.(error);
      }
    }, delayMs);
    this.flushTimer.unref();
  }

  /** Writes the uses kept in memory to state.db (one transaction, not one write per read). */
  flush(): void {
    if (this.flushTimer !== null) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    if (this.touched.size === 0) return;
    const upsert = this.db.prepare(
      'INSERT INTO chunk_use (id, used_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET used_at = excluded.used_at',
    );
    const entries = [...this.touched];
    this.db.transaction(() => {
      for (const [id, at] of entries) upsert.run(id, at);
    })();
    this.touched.clear();
  }

  /** Every recorded use (after a flush), by id; an id never used is absent. */
  usedAt(): Map<string, number> {
    this.flush();
    const rows = this.db.prepare('SELECT id, used_at FROM chunk_use').all() as {
      id: string;
      used_at: number;
    }[];
    return new Map(rows.map((r) => [r.id, r.used_at]));
  }

  /** Drops the record of `id` (removed from the cache). */
  forget(id: string): void {
    this.touched.delete(id);
    this.forgetStatement ??= this.db.prepare('DELETE FROM chunk_use WHERE id = ?');
    this.forgetStatement.run(id);
  }
}
