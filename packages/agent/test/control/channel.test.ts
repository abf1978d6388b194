/** The control channel's reconnect loop: connections a server drops before its welcome are reported. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test } from 'node:test';
import pino from 'pino';
import { ControlChannel } from '../../src/control/channel.js';
import type { TokenManager } from '../../src/client/tokens.js';

void test('a connection closed at once (a connection cap) is reported as dropped, and retried', async (t) => {
  // What the server's connection cap does: the socket is destroyed before any request is read.
  const server = createServer();
  let attempts = 0;
  server.on('connection', (socket: Socket) => {
    attempts++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const abort = new AbortController();
  const dropped: number[] = [];
  const errors: unknown[] = [];
  const tokens = {
    get: () => Promise.resolve('token'),
    invalidate: () => undefined,
  } as unknown as TokenManager;
  const channel = new ControlChannel({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tokens,
    logger: pino({ level: 'silent' }),
    heartbeatIntervalMs: 60_000,
    handshakeTimeoutMs: 5_000,
    closeTimeoutMs: 1_000,
    pollIntervalMs: 30_000,
    random: () => 0, // no backoff wait
    handlers: {
      stateVersion: () => null,
      onWelcome: () => undefined,
      onStateChanged: () => undefined,
      onRequestInventory: () => Promise.resolve(),
    },
    onError: (e) => {
      errors.push(e);
      return true;
    },
    onDropped: (end) => {
      dropped.push(end.code);
      if (dropped.length === 3) abort.abort();
    },
  });
  await channel.run(abort.signal);
  assert.deepEqual(dropped, [1006, 1006, 1006]);
  assert.equal(attempts, 3);
  assert.deepEqual(errors, []);
});
