/**
 * The update tables of state.db (migrations 2 and 4): installed releases (keyed by release id: two
 * may share a tree), holds and the transaction journal.
 */
import type { StateDatabase } from './db.js';
import { releaseId, sameRelease } from '../model/identity.js';
import type { FailureReason, InstalledApp, JournalEntry, ReleaseSpec, StepKind } from '../model/release.js';

interface ReleaseRow {
  root: string;
  release: string;
  role: 'current' | 'previous';
}

interface JournalRow {
  app: string;
  txn: string;
  mode: 'update' | 'rollback';
  from_release: string | null;
  to_release: string;
  step: string;
  attempts: number;
  reason: string | null;
  bytes_fetched: number;
}

const parseRelease = (text: string | null): ReleaseSpec | null =>
  text === null || text === 'null' ? null : (JSON.parse(text) as ReleaseSpec);

export class UpdateRecords {
  constructor(private readonly db: StateDatabase) {}

  /** Apps with an installed release, a hold or an open transaction. */
  apps(): string[] {
    const rows = this.db
      .prepare(
        'SELECT app FROM app_release UNION SELECT app FROM update_journal UNION SELECT app FROM app_hold ORDER BY app',
      )
      .all() as { app: string }[];
    return rows.map((r) => r.app);
  }

  installed(app: string): InstalledApp {
    const rows = this.db
      .prepare('SELECT root, release, role FROM app_release WHERE app = ? ORDER BY since DESC, rowid DESC')
      .all(app) as ReleaseRow[];
    const hold = this.db
      .prepare('SELECT rejected_root, rejected_id, reason FROM app_hold WHERE app = ?')
      .get(app) as { rejected_root: string; rejected_id: string | null; reason: string } | undefined;
    return {
      current: parseRelease(rows.find((r) => r.role === 'current')?.release ?? null),
      previous: rows.filter((r) => r.role === 'previous').map((r) => parseRelease(r.release) as ReleaseSpec),
      held: hold ? { id: hold.rejected_id, root: hold.rejected_root, reason: hold.reason } : null,
    };
  }

  journal(app: string): JournalEntry | null {
    const row = this.db.prepare('SELECT * FROM update_journal WHERE app = ?').get(app) as
      JournalRow | undefined;
    if (!row) return null;
    return {
      app: row.app,
      txn: row.txn,
      mode: row.mode,
      from: parseRelease(row.from_release),
      to: parseRelease(row.to_release),
      step: row.step as StepKind,
      attempts: row.attempts,
      reason: row.reason === null ? null : (JSON.parse(row.reason) as FailureReason),
      bytesFetched: row.bytes_fetched,
    };
  }

  /** Records the step about to run (synchronous=FULL: on disk before the step starts). */
  writeJournal(entry: JournalEntry): void {
    this.db
      .prepare(
        `INSERT INTO update_journal (app, txn, mode, from_release, to_release, step, attempts, reason, bytes_fetched, updated_at)
         VALUES (@app, @txn, @mode, @from, @to, @step, @attempts, @reason, @bytes, @at)
         ON CONFLICT (app) DO UPDATE SET txn = @txn, mode = @mode, from_release = @from, to_release = @to,
           step = @step, attempts = @attempts, reason = @reason, bytes_fetched = @bytes, updated_at = @at`,
      )
      .run({
        app: entry.app,
        txn: entry.txn,
        mode: entry.mode,
        from: entry.from === null ? null : JSON.stringify(entry.from),
        to: JSON.stringify(entry.to),
        step: entry.step,
        attempts: entry.attempts,
        reason: entry.reason === null ? null : JSON.stringify(entry.reason),
        bytes: entry.bytesFetched,
        at: new Date().toISOString(),
      });
  }

  clearJournal(app: string): void {
    this.db.prepare('DELETE FROM update_journal WHERE app = ?').run(app);
  }

  /** `release` becomes current, `replaced` the newest previous; older previous beyond `keepPrevious` are forgotten. */
  commit(app: string, release: ReleaseSpec, replaced: ReleaseSpec | null, keepPrevious: number): void {
    this.db.transaction(() => {
      const installed = this.installed(app);
      const previous = [replaced, ...installed.previous].filter(
        (r): r is ReleaseSpec => r !== null && !sameRelease(r, release),
      );
      this.replaceReleases(app, release, previous.slice(0, keepPrevious));
      this.db.prepare('DELETE FROM app_hold WHERE app = ?').run(app);
    })();
  }

  /** The app is back on `release` (null: nothing installed); `failed` is held with the reason. */
  rollback(
    app: string,
    release: ReleaseSpec | null,
    failed: ReleaseSpec,
    reason: FailureReason,
    keepPrevious: number,
  ): void {
    this.db.transaction(() => {
      const installed = this.installed(app);
      const previous = [...installed.previous, ...(installed.current ? [installed.current] : [])].filter(
        (r) => !sameRelease(r, release) && !sameRelease(r, failed),
      );
      this.replaceReleases(app, release, previous.slice(0, keepPrevious));
      this.db
        .prepare(
          `INSERT INTO app_hold (app, rejected_root, rejected_id, reason, since) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (app) DO UPDATE SET rejected_root = excluded.rejected_root,
             rejected_id = excluded.rejected_id, reason = excluded.reason, since = excluded.since`,
        )
        .run(
          app,
          failed.root,
          releaseId(failed),
          `${reason.code}: ${reason.message}`,
          new Date().toISOString(),
        );
    })();
  }

  private replaceReleases(app: string, current: ReleaseSpec | null, previous: ReleaseSpec[]): void {
    this.db.prepare('DELETE FROM app_release WHERE app = ?').run(app);
    const insert = this.db.prepare(
      'INSERT INTO app_release (app, release_id, root, release, role, since) VALUES (?, ?, ?, ?, ?, ?)',
    );
    const now = Date.now();
    // `since` orders previous releases newest first.
    previous.forEach((r, i) =>
      insert.run(
        app,
        releaseId(r),
        r.root,
        JSON.stringify(r),
        'previous',
        new Date(now - 1000 * (i + 1)).toISOString(),
      ),
    );
    if (current)
      insert.run(
        app,
        releaseId(current),
        current.root,
        JSON.stringify(current),
        'current',
        new Date(now).toISOString(),
      );
  }
}
