/**
 * What keeps a client from holding the server's connections for good (docs/security.md "Limits in
 * force"): caps on open connections in total and per client address, and a watchdog that closes a
 * connection whose client stalls while the server waits on it for request body bytes. A slow upload
 * is never cut while its bytes keep moving at the minimum rate; time the server itself spends (a
 * handler working, a body it has not read yet) is never held against the client. Header and
 * keep-alive timeouts are Node's own (see `app.ts`).
 *
 * Responses are not watched: Node counts a write as sent once it is handed to libuv, so a large
 * response read slowly but steadily shows no progress until it ends, and watching it would cut
 * healthy slow downloads. A client that stops reading keeps its connection (within the caps).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

export interface ConnectionLimits {
  /** 0: no cap. */
  maxConnections: number;
  /** 0: no cap. */
  maxConnectionsPerAddress: number;
  clientStallTimeoutMs: number;
  minClientBytesPerSecond: number;
}

/**
 * The key a client address is counted under: IPv4 as is (IPv4-mapped IPv6 shown as IPv4), IPv6 by
 * its /64, since one host usually holds a whole /64 and could otherwise rotate through it.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const ip = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::')
    ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => (g.replace(/^0+/, '') || '0').toLowerCase())
    .join(':')}::/64`;
}

interface Watched {
  req: IncomingMessage;
  res: ServerResponse;
  socket: Socket;
  /** Start of the current window, and the socket's received byte count then. */
  windowStartMs: number;
  readAtStart: number;
}

/** Installs the caps and the watchdog on `server`; returns a stop function for shutdown. */
export function guardConnections(
  server: Server,
  limits: ConnectionLimits,
  metrics: Registry,
  log: Logger,
): () => void {
  const open = new Gauge({
    name: 'flotilla_http_connections',
    help: 'Open client connections (HTTP and WebSocket)',
    registers: [metrics],
  });
  const refused = new Counter({
    name: 'flotilla_http_connections_refused_total',
    help: 'Connections closed at once because a connection cap was reached',
    labelNames: ['cap'] as const,
    registers: [metrics],
  });
  const stalled = new Counter({
    name: 'flotilla_http_stalled_requests_total',
    help: 'Connections closed because the client stalled sending a request body',
    registers: [metrics],
  });

  const perAddress = new Map<string, number>();
  let total = 0;
  let lastRefusalLogMs = 0;

  server.on('connection', (socket: Socket) => {
    const key = addressKey(socket.remoteAddress);
    const mine = perAddress.get(key) ?? 0;
    const cap =
      limits.maxConnections > 0 && total >= limits.maxConnections
        ? 'total'
        : limits.maxConnectionsPerAddress > 0 && mine >= limits.maxConnectionsPerAddress
          ? 'per_address'
          : null;
    if (cap !== null) {
      refused.inc({ cap });
      const now = Date.now();
      if (now - lastRefusalLogMs > 10_000) {
        lastRefusalLogMs = now;
        log.warn(
          { cap, address: key, open: total, fromAddress: mine },
          'connection cap reached; closing new connections',
        );
      }
      socket.destroy();
      return;
    }
    total += 1;
    perAddress.set(key, mine + 1);
    open.set(total);
    socket.once('close', () => {
      total -= 1;
      const left = (perAddress.get(key) ?? 1) - 1;
      if (left <= 0) perAddress.delete(key);
      else perAddress.set(key, left);
      open.set(total);
    });
  });

  const windowMs = limits.clientStallTimeoutMs;
  const minBytes = Math.max(1, Math.floor((limits.minClientBytesPerSecond * windowMs) / 1000));
  const watched = new Set<Watched>();

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    watched.add({
      req,
      res,
      socket: req.socket,
      windowStartMs: Date.now(),
      readAtStart: req.socket.bytesRead,
    });
  });

  /**
   * True while the server waits on the client for body bytes. Unconsumed body bytes sitting in the
   * request mean the handler, not the client, is behind.
   */
  function waitingForBody(w: Watched): boolean {
    return !w.req.complete && w.req.readableLength === 0;
  }

  function check(): void {
    const now = Date.now();
    for (const w of watched) {
      if (w.socket.destroyed || (w.res.writableFinished && w.req.complete)) {
        watched.delete(w);
        continue;
      }
      const waiting = waitingForBody(w);
      const moved = w.socket.bytesRead - w.readAtStart;
      if (waiting && now - w.windowStartMs >= windowMs && moved < minBytes) {
        stalled.inc();
        log.info(
          { address: w.socket.remoteAddress, method: w.req.method, url: w.req.url, moved },
          'closing a connection whose client stalled sending the request body',
        );
        watched.delete(w);
        w.socket.destroy();
        continue;
      }
      if (!waiting || now - w.windowStartMs >= windowMs) {
        w.windowStartMs = now;
        w.readAtStart = w.socket.bytesRead;
      }
    }
  }

  const timer = setInterval(check, Math.max(100, Math.min(5_000, Math.floor(windowMs / 4))));
  timer.unref();
  return () => {
    clearInterval(timer);
    watched.clear();
  };
}
