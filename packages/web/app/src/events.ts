/**
 * The live event stream (`GET /api/v1/events`, Server-Sent Events), read with fetch so that the
 * status is visible (a server without the stream answers 404: the app says so and stops trying),
 * and so that a reconnect can send `Last-Event-ID` and resume where it left off. Reconnects by
 * itself with backoff (1 s doubling to 30 s) after any network error or server restart.
 */
import { useSyncExternalStore } from 'react';
import type { StreamEvent } from '@flotilla/protocol';

/**
 * One message of the stream (docs/events.md "What is in the stream"): `{ seq, type, at, deviceId,
 * app, rollout, data }`, with `id` the sequence number as text (React keys, `Last-Event-ID`).
 */
export type LiveEvent = StreamEvent & { id: string };

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'unavailable' | 'stopped';

type Handler = (e: LiveEvent) => void;

const RECENT_MAX = 200;

export class EventStream {
  private state: StreamState = 'stopped';
  private lastId: string | null = null;
  private abort: AbortController | null = null;
  private retryMs = 1000;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly handlers = new Set<Handler>();
  private readonly stateListeners = new Set<() => void>();
  private recent: LiveEvent[] = [];
  private caughtUp = false;

  /**
   * `url` may carry filters and a start position (`?device=…&type=…&after=0`, docs/events.md);
   * `recentMax` bounds the events kept for `getRecent` (newest first).
   */
  constructor(
    private readonly url = '/api/v1/events',
    private readonly recentMax = RECENT_MAX,
  ) {}

  start(): void {
    if (this.state !== 'stopped' && this.state !== 'unavailable') return;
    this.setState('connecting');
    void this.connect();
  }

  stop(): void {
    this.abort?.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.setState('stopped');
  }

  subscribe(fn: Handler): () => void {
    this.handlers.add(fn);
    return () => this.handlers.delete(fn);
  }

  getState = (): StreamState => this.state;
  getRecent = (): LiveEvent[] => this.recent;
  /** Whether the stream has sent everything the log held when it opened (`: caught-up`). */
  getCaughtUp = (): boolean => this.caughtUp;
  onState = (fn: () => void): (() => void) => {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  };

  private setState(s: StreamState): void {
    if (this.state === s) return;
    this.state = s;
    for (const fn of this.stateListeners) fn();
  }

  private async connect(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (this.lastId !== null) headers['last-event-id'] = this.lastId;
      const res = await fetch(this.url, { headers, credentials: 'same-origin', signal: abort.signal });
      if (res.status === 404) {
        this.setState('unavailable');
        return;
      }
      if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
      this.setState('live');
      this.retryMs = 1000;
      await this.read(res.body);
      throw new Error('events: stream ended');
    } catch {
      // Stopped, or replaced by a newer connection: this one is done.
      if (abort.signal.aborted || abort !== this.abort) return;
      this.setState('reconnecting');
      this.timer = setTimeout(() => void this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 30_000);
    }
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, '');
        this.dispatch(block);
      }
    }
  }

  private dispatch(block: string): void {
    let id: string | null = null;
    let type = 'message';
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) {
        if (line.slice(1).trim() === 'caught-up' && !this.caughtUp) {
          this.caughtUp = true;
          for (const fn of this.stateListeners) fn();
        }
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (id !== null) this.lastId = id;
    if (data.length === 0) return;
    let payload: Partial<StreamEvent>;
    try {
      payload = JSON.parse(data.join('\n')) as Partial<StreamEvent>;
    } catch {
      return;
    }
    const seq = typeof payload.seq === 'number' ? payload.seq : Number(id ?? NaN);
    const event: LiveEvent = {
      seq,
      id: Number.isFinite(seq) ? String(seq) : (id ?? ''),
      type: typeof payload.type === 'string' ? payload.type : type,
      at: typeof payload.at === 'string' ? payload.at : new Date().toISOString(),
      deviceId: typeof payload.deviceId === 'string' ? payload.deviceId : null,
      app: typeof payload.app === 'string' ? payload.app : null,
      rollout: typeof payload.rollout === 'string' ? payload.rollout : null,
      data: typeof payload.data === 'object' && payload.data !== null ? payload.data : {},
    };
    this.recent = [event, ...this.recent].slice(0, this.recentMax);
    for (const fn of this.handlers) fn(event);
    for (const fn of this.stateListeners) fn();
  }
}

export const stream = new EventStream();

export function useStreamState(): StreamState {
  return useSyncExternalStore(stream.onState, stream.getState);
}

export function useRecentEvents(): LiveEvent[] {
  return useSyncExternalStore(stream.onState, stream.getRecent);
}
