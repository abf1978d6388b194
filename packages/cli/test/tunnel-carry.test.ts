/**
 * `flotilla tunnel`'s carrying of one local connection: carryConnection against a real HTTP
 * server with a WebSocket upgrade standing in for the control plane's tunnel route, and its
 * reading half (forwardLocal) against a stream slower than the local client. Every byte the local
 * client sent goes out before the end-of-data event, however its last write and its half-close
 * arrive (the end used to overtake a chunk still being sent: the e2e 50 MB tunnel came back
 * short by the tail, now and then, on a loaded machine).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { OperatorChannel } from '@flotilla/protocol';
import { WebSocketServer } from 'ws';
import { ApiClient } from '../src/api/client.js';
import { carryConnection, forwardLocal } from '../src/commands/remote/tunnel.js';

interface Received {
  bytesBeforeEof: number;
  bytesAfterEof: number;
  hash: string;
}

void describe('tunnel: one local connection carried over an operator WebSocket', () => {
  let http: HttpServer;
  let local: Server;
  let localPort = 0;
  /** What the stand-in server saw on each tunnel WebSocket, in connection order. */
  const received: Promise<Received>[] = [];

  before(async () => {
    http = createHttpServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (ws) => {
      received.push(
        new Promise<Received>((resolve) => {
          const hash = createHash('sha256');
          let before = 0;
          let afterEof = 0;
          let eof = false;
          ws.on('message', (data: Buffer, isBinary: boolean) => {
            if (!isBinary) {
              const event = JSON.parse(data.toString('utf8')) as { type: string };
              if (event.type !== 'eof') return;
              eof = true;
              // As the server does when the device's side ends too: eof, then a normal close.
              ws.send(JSON.stringify({ type: 'eof' }));
              setTimeout(() => {
                ws.close(1000, 'stream ended');
                resolve({ bytesBeforeEof: before, bytesAfterEof: afterEof, hash: hash.digest('hex') });
              }, 50);
              return;
            }
            assert.equal(data[0], OperatorChannel.data);
            if (eof) afterEof += data.length - 1;
            else {
              before += data.length - 1;
              hash.update(data.subarray(1));
            }
          });
        }),
      );
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const client = new ApiClient({
      baseUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
      token: 'flt_at_test',
    });
    local = createServer({ allowHalfOpen: true }, (socket: Socket) => {
      carryConnection(client, { deviceId: 'dev', port: 22 }, socket).catch(() => socket.destroy());
    });
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    localPort = (local.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise((resolve) => local.close(resolve));
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });

  /** Writes `data` and half-closes at once (one write, then FIN), then waits for the far end's close. */
  const sendAndClose = (data: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: localPort, allowHalfOpen: true });
      socket.on('error', reject);
      socket.on('data', () => undefined);
      socket.on('end', () => {
        socket.end();
        resolve();
      });
      socket.on('connect', () => socket.end(data));
    });

  void test('a last read larger than one message and the half-close right behind it: nothing is lost', async () => {
    // Sizes that leave a partial 32 KiB message at the end of the read the half-close follows.
    for (const size of [45_032, 70_000, 100_000, 200_001, 1_000_003]) {
      const data = randomBytes(size);
      const index = received.length;
      await sendAndClose(data);
      const got = await received[index]!;
      assert.equal(got.bytesAfterEof, 0, `${size}: data after the end-of-data event`);
      assert.equal(got.bytesBeforeEof, size, `${size}: bytes carried before the end-of-data event`);
      assert.equal(got.hash, createHash('sha256').update(data).digest('hex'));
    }
  });
});

void describe('tunnel: forwardLocal with a slow stream', () => {
  void test('the end-of-data comes after the last byte even when the half-close arrives while a chunk is still being sent', async () => {
    for (const size of [40_000, 50_000, 60_000]) {
      const events: string[] = [];
      let sent = 0;
      const done = new Promise<void>((resolve) => {
        const server = createServer({ allowHalfOpen: true }, (socket) => {
          forwardLocal(
            socket,
            // A stream whose pieces take a while to go out (a busy WebSocket): 32 KiB at a time.
            async (chunk) => {
              for (let at = 0; at < chunk.length; at += 32 * 1024) {
                await new Promise((r) => setTimeout(r, 20));
                sent += Math.min(32 * 1024, chunk.length - at);
                events.push(`data ${sent}`);
              }
            },
            () => {
              events.push(`eof ${sent}`);
              socket.end();
              server.close();
              resolve();
            },
          );
        });
        server.listen(0, '127.0.0.1', () => {
          const client = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
          client.on('data', () => undefined);
          client.on('connect', () => {
            // A first write the forwarder passes on at once, so that it is reading and idle when
            // the last write arrives, with the half-close right behind it.
            client.write(Buffer.alloc(100));
            setTimeout(() => client.end(randomBytes(size)), 200);
          });
        });
      });
      await done;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(events.at(-1), `eof ${size + 100}`, `${size}: ${events.join(', ')}`);
    }
  });
});
