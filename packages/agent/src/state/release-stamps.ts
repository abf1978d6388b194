/**
 * The `release_stamps` table of state.db (migration 3): for each staged release, the stamps of the
 * inodes staging verified (docs/updates.md "Staging"). Losing a row, or finding it unreadable, only
 * means the next staging verifies those files by content again.
 */
import { decodeStamps, encodeStamps } from '@flotilla/store';
import type { FileStamp } from '@flotilla/store';
import type { StateDatabase } from './db.js';

export class ReleaseStamps {
  constructor(private readonly db: StateDatabase) {}

  /** The stamps of the given releases of `app`; a row that does not decode is left out. */
  load(app: string, roots: readonly string[]): FileStamp[] {
    const select = this.db.prepare('SELECT stamps FROM release_stamps WHERE app = ? AND root = ?');
    const stamps: FileStamp[] = [];
    for (const root of roots) {
      const row = select.get(app, root) as { stamps: Uint8Array } | undefined;
      if (row === undefined) continue;
      try {
        stamps.push(...decodeStamps(row.stamps));
      } catch {
        // Unreadable: those files are verified by content.
      }
    }
    return stamps;
  }

  save(app: string, root: string, stamps: readonly FileStamp[]): void {
    this.db
      .prepare(
        `INSERT INTO release_stamps (app, root, stamps, recorded_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (app, root) DO UPDATE SET stamps = excluded.stamps, recorded_at = excluded.recorded_at`,
      )
      .run(app, root, encodeStamps(stamps), new Date().toISOString());
  }

  /** Forgets the stamps of every release of `app` not in `keep` (their directories are removed). */
  forgetAllBut(app: string, keep: readonly string[]): void {
    const rows = this.db.prepare('SELECT root FROM release_stamps WHERE app = ?').all(app) as {
      root: string;
    }[];
    const remove = this.db.prepare('DELETE FROM release_stamps WHERE app = ? AND root = ?');
    for (const { root } of rows) if (!keep.includes(root)) remove.run(app, root);
  }
}
