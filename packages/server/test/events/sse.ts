/** A test client of the event stream: real HTTP (fetch), messages parsed by eventsource-parser. */
import { createParser } from 'eventsource-parser';
import type { StreamEvent } from '@flotilla/protocol';

export interface SseClient {
  status: number;
  /** Resolves with the first `n` events received in all (a timeout fails the test run itself). */
  take(n: number): Promise<StreamEvent[]>;
  /** Waits for an event that `match` accepts. */
  until(match: (e: StreamEvent) => boolean): Promise<StreamEvent>;
  received: StreamEvent[];
  comments: string[];
  close(): void;
}

export async function openStream(
  baseUrl: string,
  token: string,
  query = '',
  headers: Record<string, string> = {},
): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(`${baseUrl}/api/v1/events${query}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  const received: StreamEvent[] = [];
  const comments: string[] = [];
  const waker: { wake: (() => void) | null } = { wake: null };
  let ended = false;
  const parser = createParser({
    onEvent: (m) => {
      received.push(JSON.parse(m.data) as StreamEvent);
      waker.wake?.();
    },
    onComment: (c) => comments.push(c),
  });
  if (res.ok && res.body) {
    const decoder = new TextDecoder();
    void (async () => {
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
          parser.feed(decoder.decode(chunk, { stream: true }));
      } catch {
        // aborted
      }
      ended = true;
      waker.wake?.();
    })();
  }
  const waitFor = async <T>(ready: () => T | undefined): Promise<T> => {
    for (;;) {
      const value = ready();
      if (value !== undefined) return value;
      if (ended) throw new Error(`stream ended after ${received.length} events`);
      await new Promise<void>((resolve) => (waker.wake = resolve));
    }
  };
  return {
    status: res.status,
    received,
    comments,
    take: (n) => waitFor(() => (received.length >= n ? received.slice(0, n) : undefined)),
    until: (match) => waitFor(() => received.find(match)),
    close: () => abort.abort(),
  };
}
