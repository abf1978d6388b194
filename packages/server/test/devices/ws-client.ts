/** A small test client for the device WebSocket: queues frames, awaits replies and the close. */
import { WebSocket } from 'ws';
import type { ClientOptions } from 'ws';
import { DeviceRoutes } from '@flotilla/protocol';
import type { WsMessage } from '@flotilla/protocol';

export interface Closed {
  code: number;
  reason: string;
}

export class TestSocket {
  readonly messages: WsMessage[] = [];
  readonly closed: Promise<Closed>;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (raw: Buffer) => {
      this.messages.push(JSON.parse(raw.toString('utf8')) as WsMessage);
      this.waiters.splice(0).forEach((w) => w());
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  /** Opens a connection; rejects with the HTTP status when the upgrade is refused. */
  static open(baseUrl: string, token: string | null, options: ClientOptions = {}): Promise<TestSocket> {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}${DeviceRoutes.ws}`, {
      ...options,
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new TestSocket(ws)));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () =>
          reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode, body })),
        );
      });
      ws.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The first received message matching `pred` (waits for it). */
  async next(pred: (m: WsMessage) => boolean): Promise<WsMessage> {
    for (;;) {
      const index = this.messages.findIndex(pred);
      if (index >= 0) return this.messages.splice(index, 1)[0]!;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Sends `{id, command, data}` and waits for the reply carrying that id. */
  async request(id: string, command: string, data?: unknown): Promise<WsMessage> {
    this.send({ id, command, ...(data === undefined ? {} : { data }) });
    return this.next((m) => m.id === id);
  }

  close(): void {
    this.ws.close();
  }
}
