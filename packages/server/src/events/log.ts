/**
 * The event log (docs/events.md): the persisted, bounded record that `GET /api/v1/events` serves.
 *
 * - Every domain event of the bus is appended generically: `deviceId`, `app` and `rollout` become
 *   columns when the event has them as text, the rest is the JSON payload (too large a payload is
 *   cut down to its scalar fields). A type added later needs no change here.
 * - Audit entries are written to `event_outbox` by the audit recorder in the transaction that made
 *   the change, so an entry whose transaction rolls back never becomes an event; the writer moves
 *   committed outbox rows into the log.
 * - Sequence numbers are assigned only under one lock (SQLite's write lock, a PostgreSQL advisory
 *   lock shared by every server process), so numbers grow in commit order: a reader that has seen
 *   `seq = n` never later finds a committed event below n.
 * - Retention: the newest `eventLogMaxEvents` and nothing older than `eventLogMaxAgeMs`, deleted in
 *   batches. Appends wait in a bounded queue while the database is unreachable; past the bound the
 *   oldest are dropped (counted in `flotilla_events_dropped_total`).
 * - Writes are grouped: an append or an outbox entry is written within `EVENT_FLUSH_DELAY_MS`
 *   together with whatever else arrived meanwhile (one transaction for what a burst of reports
 *   emits, instead of one per few events); `settle` and `stop` write at once.
 */
import { sql } from 'kysely';
import { Counter } from 'prom-client';
import type { ServerContext } from '../context.js';
import type { EventsTable } from '../db/schema.js';
import { writeTransaction } from '../db/write-transaction.js';
import { payloadText } from '../db/event-rows.js';
import type { DomainEvent } from './bus.js';

/** What the stream reads: one event of the log. */
export interface LoggedEvent {
  seq: number;
  type: string;
  at: string;
  deviceId: string | null;
  app: string | null;
  rollout: string | null;
  data: Record<string, unknown>;
}

export type NewEvent = Omit<EventsTable, 'seq'>;

/** Events per insert statement and per read page. */
export const EVENT_BATCH = 500;
/**
 * Appends held in memory while the database cannot take them (a deploy to 10,000 devices emits
 * 10,000 events at once; at ~0.5 kB each this bounds the queue near 25 MB).
 */
const MAX_QUEUED = 50_000;
/**
 * How long an append waits for others to share its transaction (ms). A report emits one or two
 * events and its audit entry goes through the outbox; at a few hundred reports a second, writing
 * each burst on its own cost a transaction, an outbox read and a `max(seq)` per few events.
 */
export const EVENT_FLUSH_DELAY_MS = 25;
/** Rows per DELETE while pruning. */
const PRUNE_BATCH = 1_000;
/** The key of the PostgreSQL advisory lock under which sequence numbers are assigned. */
const SEQ_LOCK_KEY = 0x466c7445; // "FltE"

const textOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** A domain event as a log row, whatever its type. */
export function rowOfDomainEvent(event: DomainEvent, at: Date): NewEvent {
  const { type, ...rest } = event as { type: string } & Record<string, unknown>;
  const row: NewEvent = {
    type,
    at: at.toISOString(),
    device_id: textOrNull(rest.deviceId),
    app: textOrNull(rest.app),
    // Deployments name theirs `rollout` (`dep_…`), the rollout engine `rolloutId`.
    rollout: textOrNull(rest.rollout) ?? textOrNull(rest.rolloutId),
    payload: '',
  };
  if (row.device_id !== null) delete rest.deviceId;
  if (row.app !== null) delete rest.app;
  if (row.rollout !== null) {
    if (typeof rest.rollout === 'string') delete rest.rollout;
    else delete rest.rolloutId;
  }
  row.payload = payloadText(rest);
  return row;
}

export function loggedEvent(row: Omit<EventsTable, 'seq'> & { seq: number | string }): LoggedEvent {
  let data: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(row.payload);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
      data = parsed as Record<string, unknown>;
  } catch {
    data = {};
  }
  return {
    seq: Number(row.seq),
    type: row.type,
    at: row.at,
    deviceId: row.device_id,
    app: row.app,
    rollout: row.rollout,
    data,
  };
}

export interface EventLogOptions {
  /** Called with the newest sequence number after each commit of new events. */
  onCommitted: (seq: number) => void;
  /** How often the outbox is looked at and retention applied (ms). */
  sweepIntervalMs?: number;
}

export class EventLog {
  private queue: NewEvent[] = [];
  private writing: Promise<void> | null = null;
  private again = false;
  private outboxDue = true;
  private timer: NodeJS.Timeout | null = null;
  /** The pending grouped write (`EVENT_FLUSH_DELAY_MS`), if one is armed. */
  private flushTimer: NodeJS.Timeout | null = null;
  /** `settle`/`stop`: the running write goes on until the queue is empty. */
  private draining = false;
  private lastPrune = 0;
  private sincePrune = 0;
  private pruning: Promise<void> | null = null;
  private stopped = false;
  private readonly dropped: Counter;
  private readonly appended: Counter;

  constructor(
    private readonly ctx: ServerContext,
    private readonly opts: EventLogOptions,
  ) {
    const metric = <T extends string>(name: string, help: string) =>
      (ctx.metrics.getSingleMetric(name) as Counter<T> | undefined) ??
      new Counter({ name, help, registers: [ctx.metrics] });
    this.dropped = metric(
      'flotilla_events_dropped_total',
      'events not logged because the database could not take them in time',
    );
    this.appended = metric('flotilla_events_logged_total', 'events written to the event log by this process');
  }

  start(): void {
    const every = this.opts.sweepIntervalMs ?? 1_000;
    this.timer ??= setInterval(() => {
      this.outboxDue = true;
      this.schedule();
      this.maybePrune(false);
    }, every);
    this.timer.unref();
    this.schedule();
  }

  /** Writes what is queued, then stops; call before the database closes. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.clearFlush();
    this.outboxDue = true;
    this.draining = true;
    this.schedule();
    await this.writing;
    this.stopped = true;
    await this.pruning;
  }

  /** Queues a domain event; it is written within milliseconds. */
  append(event: DomainEvent): void {
    if (this.stopped) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.queue.shift();
      this.dropped.inc();
    }
    this.queue.push(rowOfDomainEvent(event, this.ctx.clock.now()));
    // A full batch goes at once; fewer wait a moment for company.
    if (this.queue.length >= EVENT_BATCH) this.schedule();
    else this.scheduleSoon();
  }

  /** An audit entry went into the outbox (maybe in a transaction not committed yet). */
  outboxWritten(): void {
    this.outboxDue = true;
    // The caller's transaction commits after the recorder returns (well within the delay); the
    // sweep catches later commits.
    this.scheduleSoon();
  }

  /** Resolves once everything queued so far is written (tests, shutdown). */
  async settle(): Promise<void> {
    this.outboxDue = true;
    this.clearFlush();
    this.draining = true;
    this.schedule();
    while (this.writing) await this.writing;
  }

  /** A write within EVENT_FLUSH_DELAY_MS, shared by everything that arrives until then. */
  private scheduleSoon(): void {
    if (this.stopped || this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.schedule();
    }, EVENT_FLUSH_DELAY_MS);
    this.flushTimer.unref();
  }

  private clearFlush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.writing) {
      this.again = true;
      return;
    }
    if (this.queue.length === 0 && !this.outboxDue) return;
    this.writing = this.writeAll().finally(() => {
      this.writing = null;
    });
  }

  private async writeAll(): Promise<void> {
    do {
      this.again = false;
      try {
        const more = await this.writeOnce();
        if (more) this.again = true;
      } catch (e) {
        // Kept queued; the sweep retries.
        this.draining = false;
        this.ctx.log.warn(
          { err: e, queued: this.queue.length },
          'could not write to the event log; will retry',
        );
        return;
      }
      // What arrived during this write waits for its own grouped write, unless a batch is full.
    } while (this.again || this.queue.length >= EVENT_BATCH || (this.draining && this.queue.length > 0));
    this.draining = false;
    if (this.queue.length > 0 || this.outboxDue) this.scheduleSoon();
  }

  /** One locked transaction: committed outbox rows and queued events get their numbers. */
  private async writeOnce(): Promise<boolean> {
    const { db, dialect } = this.ctx;
    if (this.queue.length === 0) {
      if (!this.outboxDue) return false;
      const any = await db.selectFrom('event_outbox').select('id').limit(1).executeTakeFirst();
      if (!any) {
        this.outboxDue = false;
        return false;
      }
    }
    this.outboxDue = false;
    const batch = this.queue.splice(0, EVENT_BATCH);
    let outboxFull = false;
    let newest: number | null = null;
    try {
      if (dialect === 'postgres') {
        // One statement, one round trip (its own transaction): the lock, the outbox's rows taken and
        // deleted, and they and the queued events numbered in that order. The lock is taken before
        // the rows are read and numbered (an InitPlan), so the numbers' order is the commits' order;
        // outbox rows another writer took meanwhile are skipped by the DELETE (already deleted).
        const queued =
          batch.length === 0
            ? sql``
            : sql`UNION ALL SELECT 1, ord, type, at, device_id, app, rollout, payload FROM (VALUES ${sql.join(
                batch.map(
                  (e, i) =>
                    sql`(${sql.lit(i)}, ${e.type}::text, ${e.at}::text, ${e.device_id}::text, ${e.app}::text, ${e.rollout}::text, ${e.payload}::text)`,
                ),
              )}) AS q(ord, type, at, device_id, app, rollout, payload) WHERE EXISTS (SELECT 1 FROM locked)`;
        const result = await sql<{ seq: number | string; outbox: number | string }>`
          WITH locked AS (SELECT pg_advisory_xact_lock(${SEQ_LOCK_KEY})),
          taken AS (
            DELETE FROM event_outbox
            WHERE id IN (
              SELECT id FROM event_outbox WHERE EXISTS (SELECT 1 FROM locked) ORDER BY id LIMIT ${EVENT_BATCH}
            )
            RETURNING *
          ),
          numbered AS (
            INSERT INTO events (type, at, device_id, app, rollout, payload)
            SELECT type, at, device_id, app, rollout, payload FROM (
              SELECT 0 AS part, id AS ord, type, at, device_id, app, rollout, payload FROM taken
              ${queued}
            ) AS rows
            ORDER BY part, ord
            RETURNING seq
          )
          SELECT (SELECT max(seq) FROM numbered) AS seq, (SELECT count(*) FROM taken) AS outbox`.execute(db);
        const { seq, outbox } = result.rows[0]!;
        outboxFull = Number(outbox) === EVENT_BATCH;
        const rows = Number(outbox) + batch.length;
        if (rows > 0) {
          newest = seq === null ? null : Number(seq);
          this.appended.inc(rows);
          this.sincePrune += rows;
        }
      } else
        await writeTransaction(db, dialect, async (trx) => {
          const read = await trx
            .selectFrom('event_outbox')
            .selectAll()
            .orderBy('id')
            .limit(EVENT_BATCH)
            .execute();
          const outbox = read.map(({ id, ...row }) => ({ id, row }));
          if (outbox.length > 0)
            await trx
              .deleteFrom('event_outbox')
              .where(
                'id',
                'in',
                outbox.map((r) => r.id),
              )
              .execute();
          outboxFull = outbox.length === EVENT_BATCH;
          const rows: NewEvent[] = [...outbox.map((o) => o.row), ...batch];
          if (rows.length === 0) return;
          let top = -1;
          for (let i = 0; i < rows.length; i += EVENT_BATCH) {
            const inserted = await trx
              .insertInto('events')
              .values(rows.slice(i, i + EVENT_BATCH))
              .returning('seq')
              .execute();
            for (const r of inserted) top = Math.max(top, Number(r.seq));
          }
          newest = top < 0 ? null : top;
          this.appended.inc(rows.length);
          this.sincePrune += rows.length;
        });
    } catch (e) {
      // Back in front, in order; the bound holds.
      this.queue = [...batch, ...this.queue];
      const over = this.queue.length - MAX_QUEUED;
      if (over > 0) {
        this.queue.splice(0, over);
        this.dropped.inc(over);
      }
      this.outboxDue = true;
      throw e;
    }
    if (newest !== null) this.opts.onCommitted(newest);
    this.maybePrune(false);
    return outboxFull;
  }

  private maybePrune(force: boolean): void {
    const now = Date.now();
    if (!force && this.sincePrune < PRUNE_BATCH && now - this.lastPrune < 60_000) return;
    if (this.pruning || this.stopped) return;
    this.lastPrune = now;
    this.sincePrune = 0;
    this.pruning = this.prune()
      .then(() => undefined)
      .catch((e: unknown) => this.ctx.log.warn({ err: e }, 'could not prune the event log; will retry'))
      .finally(() => {
        this.pruning = null;
      });
  }

  /** Applies retention in batches; resolves with the number of events removed. */
  async prune(): Promise<number> {
    const { db, config } = this.ctx;
    let removed = 0;
    const keepFrom = await db
      .selectFrom('events')
      .select('seq')
      .orderBy('seq', 'desc')
      .offset(config.eventLogMaxEvents)
      .limit(1)
      .executeTakeFirst();
    if (keepFrom) removed += await this.deleteBatches((q) => q.where('seq', '<=', keepFrom.seq));
    const cutoff = new Date(this.ctx.clock.now().getTime() - config.eventLogMaxAgeMs).toISOString();
    removed += await this.deleteBatches((q) => q.where('at', '<', cutoff));
    return removed;
  }

  private async deleteBatches(where: (q: SeqQuery) => SeqQuery): Promise<number> {
    let removed = 0;
    for (;;) {
      if (this.stopped) return removed;
      const seqs = await where(selectSeqs(this.ctx.db)).orderBy('seq').limit(PRUNE_BATCH).execute();
      if (seqs.length === 0) return removed;
      await this.ctx.db
        .deleteFrom('events')
        .where(
          'seq',
          'in',
          seqs.map((r) => r.seq),
        )
        .execute();
      removed += seqs.length;
      if (seqs.length < PRUNE_BATCH) return removed;
    }
  }

  /** Up to `limit` events after `after`, oldest first. */
  async read(after: number, limit = EVENT_BATCH): Promise<LoggedEvent[]> {
    const rows = await this.ctx.db
      .selectFrom('events')
      .selectAll()
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map(loggedEvent);
  }

  /** The oldest and newest sequence numbers held (null: the log is empty). */
  async bounds(): Promise<{ oldest: number | null; newest: number | null }> {
    const row = await this.ctx.db
      .selectFrom('events')
      .select((eb) => [eb.fn.min('seq').as('oldest'), eb.fn.max('seq').as('newest')])
      .executeTakeFirst();
    return {
      oldest: row?.oldest == null ? null : Number(row.oldest),
      newest: row?.newest == null ? null : Number(row.newest),
    };
  }
}

function selectSeqs(db: ServerContext['db']) {
  return db.selectFrom('events').select('seq');
}
type SeqQuery = ReturnType<typeof selectSeqs>;
