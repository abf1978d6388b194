import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * What the proxy does to one upstream answer: pass it, cut the connection after `afterBytes`
 * body bytes, flip one byte, or stall (send headers, then nothing).
 */
export type Fault = { kind: 'cut'; afterBytes: number } | { kind: 'corrupt' } | { kind: 'stall' } | null;

export interface Proxy {
  url: string;
  /** Requests seen, with their Range header. */
  requests: { method: string; path: string; range: string | null }[];
  stop(): Promise<void>;
}

/** An HTTP proxy in front of a registry; `decide` picks a fault per request. */
export async function startProxy(upstream: string, decide: (req: IncomingMessage) => Fault): Promise<Proxy> {
  const requests: Proxy['requests'] = [];
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    requests.push({
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      range: req.headers.range ?? null,
    });
    const fault = decide(req);
    const headers: Record<string, string> = {};
    for (const name of ['authorization', 'accept', 'range']) {
      const v = req.headers[name];
      if (typeof v === 'string') headers[name] = v;
    }
    const up = await fetch(`${upstream}${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers,
      redirect: 'manual',
    });
    const out: Record<string, string> = {};
    up.headers.forEach((v, k) => {
      if (k !== 'transfer-encoding' && k !== 'connection' && k !== 'content-encoding') out[k] = v;
    });
    res.writeHead(up.status, out);
    if (fault?.kind === 'stall') {
      res.flushHeaders();
      return;
    }
    let sent = 0;
    if (up.body) {
      for await (const chunk of up.body) {
        let buf = Buffer.from(chunk);
        if (fault?.kind === 'cut' && sent + buf.length > fault.afterBytes) {
          res.write(buf.subarray(0, fault.afterBytes - sent));
          await new Promise((r) => setTimeout(r, 20));
          res.socket?.destroy();
          return;
        }
        if (fault?.kind === 'corrupt' && sent === 0 && buf.length > 0) {
          buf = Buffer.from(buf);
          buf[0] = (buf[0] as number) ^ 0xff;
        }
        sent += buf.length;
        res.write(buf);
      }
    }
    res.end();
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.socket?.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
