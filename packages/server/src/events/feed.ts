/**
 * One process's reader of the event log, shared by all its event streams (docs/events.md).
 *
 * The feed reads each new page of the log once and hands it to the streams that are live (caught up
 * with the feed). A stream that starts from an older position reads the log by itself, page by
 * page, waiting for its client to take each page, and joins the live set once it has reached the
 * feed's position; the check and the join happen in one synchronous step, so no event falls
 * between them. A live stream never waits: when its client still has more than the configured
 * buffer unread when the next page arrives, the stream is cut off (the client reconnects with Last-Event-ID and misses nothing the log
 * still holds). So a stalled client costs at most its buffer, never the server's memory.
 */
import { Gauge } from 'prom-client';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { EventLog, LoggedEvent } from './log.js';
import { EVENT_BATCH } from './log.js';
import type { Notifier } from './notifier.js';

/** A consumer of events in order; `deliver` is called with every event after its position. */
export interface FeedSubscriber {
  /** The sequence number of the last event this subscriber has been given (or skipped). */
  position: number;
  /**
   * Takes the next events in order; false when the client still has more than its buffer unread
   * from earlier pages (nothing is written then, and the subscriber is dropped).
   */
  deliver(events: readonly LoggedEvent[]): boolean;
  /** The subscriber was dropped for being over its buffer. */
  cutOff(): void;
}

export interface FeedMetrics {
  streams: Gauge;
  cutOff: Counter;
}

export function createFeedMetrics(registry: Registry): FeedMetrics {
  const existing = registry.getSingleMetric('flotilla_event_streams') as Gauge | undefined;
  return {
    streams:
      existing ??
      new Gauge({
        name: 'flotilla_event_streams',
        help: 'open event streams on this process',
        registers: [registry],
      }),
    cutOff:
      (registry.getSingleMetric('flotilla_event_streams_cut_off_total') as Counter | undefined) ??
      new Counter({
        name: 'flotilla_event_streams_cut_off_total',
        help: 'event streams disconnected because the client left too much unread',
        registers: [registry],
      }),
  };
}

export class EventFeed {
  /** The newest sequence number handed to the live subscribers. */
  private headSeq = 0;
  private readonly live = new Set<FeedSubscriber>();
  private pumping: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => void) | null = null;

  constructor(
    private readonly log: EventLog,
    private readonly notifier: Notifier,
    private readonly logger: Logger,
    private readonly pollIntervalMs = 2_000,
  ) {}

  get head(): number {
    return this.headSeq;
  }

  get liveCount(): number {
    return this.live.size;
  }

  async start(): Promise<void> {
    this.headSeq = (await this.log.bounds()).newest ?? 0;
    this.unlisten = this.notifier.listen((seq) => {
      if (seq <= this.headSeq) return;
      // Nobody live to hand events to: move on without reading (a stream that is catching up
      // reads the log by itself until it reaches this position).
      if (this.live.size === 0 && !this.pumping) this.headSeq = seq;
      else this.pump();
    });
    // A missed notification (Redis away) delays events by at most this long.
    this.timer = setInterval(() => {
      if (this.live.size > 0) this.pump();
    }, this.pollIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.unlisten?.();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.live.clear();
  }

  /**
   * Joins the live set if `sub` has caught up with the feed (synchronously: nothing is delivered in
   * between); false when it must read more of the log first.
   */
  tryJoin(sub: FeedSubscriber): boolean {
    if (sub.position < this.headSeq) return false;
    this.live.add(sub);
    return true;
  }

  leave(sub: FeedSubscriber): void {
    this.live.delete(sub);
  }

  /** Reads what is new once for every live subscriber; concurrent calls share one read. */
  pump(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.readNew()
      .catch((e: unknown) => this.logger.warn({ err: e }, 'could not read the event log; will retry'))
      .finally(() => {
        this.pumping = null;
        if (this.again) {
          this.again = false;
          this.pump();
        }
      });
  }

  private async readNew(): Promise<void> {
    for (;;) {
      const rows = await this.log.read(this.headSeq, EVENT_BATCH);
      if (rows.length === 0) return;
      for (const sub of this.live) {
        const fresh = rows.filter((row) => row.seq > sub.position);
        if (fresh.length > 0 && !sub.deliver(fresh)) {
          this.live.delete(sub);
          sub.cutOff();
        }
      }
      this.headSeq = Math.max(this.headSeq, rows[rows.length - 1]!.seq);
      if (rows.length < EVENT_BATCH) return;
    }
  }
}
