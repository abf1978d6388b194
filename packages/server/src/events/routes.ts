/**
 * `GET /api/v1/events`: the event log as Server-Sent Events (docs/events.md). Written by hand on
 * the raw response rather than through an SSE plugin: the stream's memory bound rests on reading
 * the socket's unsent byte count after each write and cutting the client off past the limit, which
 * the plugins (a Node stream or async iterator piped into the reply) hide.
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  EVENT_SEQ_PATTERN,
  EventRoutes,
  EventsQuery,
  FlotillaError,
  ROLE_RANK,
  STREAM_GAP_TYPE,
} from '@flotilla/protocol';
import type { StreamEvent, StreamGap } from '@flotilla/protocol';
import type { ServerContext } from '../context.js';
import { operatorOf, requireRole } from '../http/auth.js';
import type { EventFeed, FeedMetrics, FeedSubscriber } from './feed.js';
import type { EventLog, LoggedEvent } from './log.js';
import { EVENT_BATCH } from './log.js';

const SEQ = new RegExp(EVENT_SEQ_PATTERN);
/** How long a reconnecting client should wait (EventSource's `retry:`), ms. */
const RETRY_MS = 2_000;

/** Which events a role sees: audit entries (`audit.*`) only admins, like `GET /api/v1/audit`. */
export function visibleTo(role: 'admin' | 'deployer' | 'viewer', type: string): boolean {
  return type.startsWith('audit.') ? ROLE_RANK[role] >= ROLE_RANK.admin : true;
}

/** A matcher for `?type=` patterns: exact, `prefix.*`, or `*`; no patterns: everything. */
export function typeMatcher(patterns: readonly string[] | undefined): (type: string) => boolean {
  if (!patterns || patterns.length === 0 || patterns.includes('*')) return () => true;
  const exact = new Set(patterns.filter((p) => !p.endsWith('.*')));
  const prefixes = patterns.filter((p) => p.endsWith('.*')).map((p) => p.slice(0, -1));
  return (type) => exact.has(type) || prefixes.some((p) => type.startsWith(p));
}

/** One event's SSE text, built once however many streams send it. */
const frames = new WeakMap<LoggedEvent, string>();

function frame(event: LoggedEvent): string {
  const cached = frames.get(event);
  if (cached !== undefined) return cached;
  const text = frameText(event);
  frames.set(event, text);
  return text;
}

function frameText(event: LoggedEvent): string {
  const body: StreamEvent = {
    seq: event.seq,
    type: event.type,
    at: event.at,
    deviceId: event.deviceId,
    app: event.app,
    rollout: event.rollout,
    data: event.data,
  };
  return `id: ${event.seq}\ndata: ${JSON.stringify(body)}\n\n`;
}

function parseCursor(value: string | undefined, what: string): number | null {
  // EventSource sends no Last-Event-ID before its first id; an empty one means the same.
  if (value === undefined || value.trim() === '') return null;
  const text = value.trim();
  if (!SEQ.test(text))
    throw new FlotillaError('FLT_VALIDATION', `${what} must be an event sequence number (decimal digits)`, {
      details: { [what]: value.slice(0, 64) },
    });
  return Number(text);
}

export interface EventRouteServices {
  ctx: ServerContext;
  log: EventLog;
  feed: EventFeed;
  metrics: FeedMetrics;
}

class Stream implements FeedSubscriber {
  position: number;
  private closed = false;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    private readonly res: ServerResponse,
    private readonly services: EventRouteServices,
    private readonly accepts: (event: LoggedEvent) => boolean,
    start: number,
  ) {
    this.position = start;
    res.on('close', () => this.close());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private get over(): boolean {
    return this.res.writableLength > this.services.ctx.config.eventStreamBufferBytes;
  }

  deliver(events: readonly LoggedEvent[]): boolean {
    if (this.closed) return true;
    // What earlier pages left unsent; the page itself is written in one piece.
    if (this.over) return false;
    const last = events[events.length - 1];
    if (last) this.position = last.seq;
    const text = events.filter(this.accepts).map(frame).join('');
    if (text.length > 0) this.res.write(text);
    return true;
  }

  cutOff(): void {
    this.services.metrics.cutOff.inc();
    this.services.ctx.log.info(
      { unread: this.res.writableLength },
      'event stream client left too much unread; disconnected',
    );
    this.res.destroy();
    this.close();
  }

  write(text: string): void {
    if (!this.closed) this.res.write(text);
  }

  startHeartbeat(): void {
    this.heartbeat = setInterval(() => {
      if (this.over) this.cutOff();
      else this.write(': heartbeat\n\n');
    }, this.services.ctx.config.eventStreamHeartbeatMs);
    this.heartbeat.unref();
  }

  /** Reads the log from the stream's position until it can join the live feed. */
  async catchUp(): Promise<void> {
    const { feed, log } = this.services;
    while (!this.closed) {
      if (feed.tryJoin(this)) {
        // Everything the log held when the stream opened has been sent (`flotilla events` without -f stops here).
        this.write(': caught-up\n\n');
        return;
      }
      const rows = await log.read(this.position, EVENT_BATCH);
      if (this.closed) return;
      if (rows.length === 0) {
        // Nothing after our position but the feed is ahead: only pruned events lay between.
        this.position = Math.max(this.position, feed.head);
        continue;
      }
      // Pull, not push: wait for the client to take the last page before writing the next.
      if (this.over) await Promise.race([once(this.res, 'drain'), once(this.res, 'close')]);
      if (this.closed) return;
      this.deliver(rows);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.services.feed.leave(this);
    this.services.metrics.streams.dec();
    if (!this.res.writableEnded) this.res.end();
  }
}

export function registerEventRoutes(base: FastifyInstance, services: EventRouteServices): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const open = new Set<Stream>();
  app.addHook('preClose', (done) => {
    for (const stream of open) stream.close();
    done();
  });
  app.get(
    EventRoutes.events,
    {
      // A HEAD would open a stream that never sends a body.
      exposeHeadRoute: false,
      schema: {
        summary:
          'The event stream (Server-Sent Events): device, update, deployment, rollout and audit events',
        description:
          'One SSE message per event: `id:` its sequence number, `data:` a StreamEvent as JSON (no `event:` field). ' +
          'Resume with the Last-Event-ID header (EventSource sends it by itself) or `?after=`; when the events after ' +
          `that position were pruned, the first message is a \`${STREAM_GAP_TYPE}\` event (data: StreamGap). ` +
          "Comment lines (`: heartbeat`) keep idle streams open. A client that leaves more than the server's " +
          'event stream buffer unread is disconnected; it reconnects with Last-Event-ID. Audit events (`audit.*`) ' +
          'are shown to admins only. Roles: viewer.',
        tags: ['events'],
        querystring: EventsQuery,
        headers: {
          type: 'object',
          properties: {
            'last-event-id': {
              type: 'string',
              description: 'the sequence number of the last event received; wins over ?after=',
            },
          },
        },
        response: {
          200: {
            description: 'text/event-stream of StreamEvent messages',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
        },
      },
      preHandler: requireRole('viewer'),
    },
    async (request, reply) => {
      const principal = operatorOf(request);
      const lastEventId = request.headers['last-event-id'];
      const resume =
        parseCursor(Array.isArray(lastEventId) ? lastEventId[0] : lastEventId, 'Last-Event-ID') ??
        parseCursor(request.query.after, 'after');
      const matchesType = typeMatcher(request.query.type);
      const devices = request.query.device ? new Set(request.query.device) : null;
      const accepts = (e: LoggedEvent) =>
        visibleTo(principal.role, e.type) &&
        matchesType(e.type) &&
        (devices === null || (e.deviceId !== null && devices.has(e.deviceId)));

      let start = services.feed.head;
      let gap: StreamGap | null = null;
      if (resume !== null) {
        const { oldest, newest } = await services.log.bounds();
        start = resume;
        if (newest !== null && resume > newest && resume > services.feed.head) {
          gap = { requestedAfter: resume, oldestHeld: oldest, reason: 'unknown' };
          start = Math.max(newest, services.feed.head);
        } else if (resume > 0 && oldest !== null && resume < oldest - 1) {
          gap = { requestedAfter: resume, oldestHeld: oldest, reason: 'pruned' };
        } else if (resume > 0 && oldest === null && resume > services.feed.head) {
          gap = { requestedAfter: resume, oldestHeld: null, reason: 'unknown' };
          start = services.feed.head;
        }
      }

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.socket?.setNoDelay(true);
      services.metrics.streams.inc();
      const stream = new Stream(res, services, accepts, start);
      open.add(stream);
      res.on('close', () => open.delete(stream));
      stream.write(`retry: ${RETRY_MS}\n\n`);
      if (gap) {
        const gapEvent: StreamEvent = {
          seq: start,
          type: STREAM_GAP_TYPE,
          at: services.ctx.clock.now().toISOString(),
          deviceId: null,
          app: null,
          rollout: null,
          data: gap,
        };
        stream.write(`data: ${JSON.stringify(gapEvent)}\n\n`);
      }
      stream.startHeartbeat();
      try {
        await stream.catchUp();
      } catch (e) {
        request.log.warn({ err: e }, 'event stream could not read the event log');
        stream.close();
      }
    },
  );
}
