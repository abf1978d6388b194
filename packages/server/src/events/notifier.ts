/**
 * "The event log holds events up to sequence number N": how a process's event streams learn that
 * there is something new to read (docs/events.md "Several server processes"). The log is the
 * source of truth; a notification only carries a number, so a lost or late one delays delivery
 * (the feed also polls the log) but can never reorder or lose an event.
 *
 * Without Redis the notification stays in this process. With `redisUrl` each process publishes on
 * one Redis channel and subscribes to it, so a stream on process B hears of an event that process A
 * wrote within a round trip.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export const EVENTS_CHANNEL = 'flotilla:events:v1';

export interface Notifier {
  /** Tells every process (this one at once) that the log holds events up to `seq`. */
  publish(seq: number): void;
  /** Calls `listener` with each announced sequence number; returns the unsubscribe function. */
  listen(listener: (seq: number) => void): () => void;
  close(): Promise<void>;
}

function listeners() {
  const set = new Set<(seq: number) => void>();
  return {
    add(fn: (seq: number) => void) {
      set.add(fn);
      return () => {
        set.delete(fn);
      };
    },
    call(seq: number) {
      for (const fn of [...set]) fn(seq);
    },
  };
}

export function createLocalNotifier(): Notifier {
  const l = listeners();
  return { publish: (seq) => l.call(seq), listen: (fn) => l.add(fn), close: () => Promise.resolve() };
}

/** Connects to Redis (both connections reconnect by themselves; failures are logged, never thrown). */
export async function createRedisNotifier(url: string, log: Logger): Promise<Notifier> {
  const l = listeners();
  const options = { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false } as const;
  const pub = new Redis(url, options);
  const sub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null });
  let warned = false;
  const onError = (err: Error) => {
    if (warned) return;
    warned = true;
    log.warn(
      { err },
      'Redis for event notifications is unreachable; streams poll the event log until it is back',
    );
  };
  pub.on('error', onError);
  sub.on('error', onError);
  pub.on('ready', () => {
    warned = false;
  });
  sub.on('message', (_channel: string, message: string) => {
    const seq = Number(message);
    if (Number.isSafeInteger(seq) && seq >= 0) l.call(seq);
  });
  try {
    await pub.connect();
    await sub.connect();
    await sub.subscribe(EVENTS_CHANNEL);
  } catch (e) {
    pub.disconnect();
    sub.disconnect();
    throw e;
  }
  return {
    publish(seq) {
      l.call(seq);
      pub.publish(EVENTS_CHANNEL, String(seq)).catch(onError);
    },
    listen: (fn) => l.add(fn),
    async close() {
      await Promise.allSettled([pub.quit(), sub.quit()]);
      pub.disconnect();
      sub.disconnect();
    },
  };
}
