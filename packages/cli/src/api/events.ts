/**
 * The event stream and the fleet overview (docs/events.md). The stream is read with fetch and parsed
 * with eventsource-parser (the SSE wire format: fields, multi-line data, comments, partial chunks),
 * not by hand.
 */
import { createParser } from 'eventsource-parser';
import {
  EventRoutes,
  FleetOverview,
  FlotillaError,
  StreamEvent,
  errorFromEnvelope,
} from '@flotilla/protocol';
import { checkBody } from '@flotilla/node-kit';
import type { ApiClient } from './client.js';

export const fleetOverview = (c: ApiClient) => c.request('GET', EventRoutes.fleetOverview, FleetOverview);

export interface StreamOptions {
  /** Resume after this sequence number (sent as Last-Event-ID); null: only new events. */
  after: number | null;
  types: readonly string[];
  devices: readonly string[];
  signal: AbortSignal;
  /** Abort a connection that has been silent this long (the server sends heartbeats), ms. */
  idleTimeoutMs: number;
  onEvent(event: StreamEvent): void;
  /** The server has sent everything its log held when the stream opened. */
  onCaughtUp?(): void;
}

/**
 * Reads one connection of the event stream until it ends, the signal aborts or it is silent for too
 * long; resolves with the id of the last event received (or the `after` given). A refusal
 * (400/401/403) rejects with the server's FlotillaError; a lost connection resolves, so that the
 * caller may reconnect from the returned position.
 */
export async function readEventStream(c: ApiClient, opts: StreamOptions): Promise<number | null> {
  const url = new URL(EventRoutes.events, c.baseUrl);
  for (const t of opts.types) url.searchParams.append('type', t);
  for (const d of opts.devices) url.searchParams.append('device', d);
  const connection = new AbortController();
  const abort = () => connection.abort();
  opts.signal.addEventListener('abort', abort, { once: true });
  let last = opts.after;
  let idle: NodeJS.Timeout | null = null;
  const touch = () => {
    if (idle) clearTimeout(idle);
    idle = setTimeout(abort, opts.idleTimeoutMs);
    idle.unref();
  };
  try {
    touch();
    let res: Response;
    try {
      res = await fetch(url, {
        headers: {
          ...c.authHeaders(),
          accept: 'text/event-stream',
          ...(last !== null ? { 'last-event-id': String(last) } : {}),
        },
        signal: connection.signal,
      });
    } catch (e) {
      if (opts.signal.aborted) return last;
      throw new FlotillaError('FLT_NETWORK', `cannot reach ${c.baseUrl}: ${(e as Error).message}`);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      throw errorFromEnvelope(res.status, body, res.headers.get('retry-after'));
    }
    const parser = createParser({
      onEvent: (message) => {
        const event = checkBody(
          StreamEvent,
          JSON.parse(message.data) as unknown,
          `GET ${EventRoutes.events}`,
        );
        if (message.id !== undefined && message.id !== '') last = event.seq;
        opts.onEvent(event);
      },
      onComment: (comment) => {
        if (comment.trim() === 'caught-up') opts.onCaughtUp?.();
      },
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        touch();
        parser.feed(decoder.decode(chunk, { stream: true }));
      }
    } catch (e) {
      if (e instanceof FlotillaError) throw e;
      // The connection broke (or was aborted): the caller decides whether to reconnect.
    }
    return last;
  } finally {
    if (idle) clearTimeout(idle);
    opts.signal.removeEventListener('abort', abort);
  }
}
