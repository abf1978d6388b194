/**
 * Shutdown never waits on a keep-alive client: a request in flight when the close begins is
 * answered, and its connection closed with it. Otherwise the connection would sit idle, open, for
 * the keep-alive timeout (72 s), and `flotilla server` would hit its 15 s forced exit on SIGTERM
 * (an agent that had requests in flight at that moment reuses its pooled sockets only as its
 * backoff allows).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { buildApp } from '../../src/app.js';
import { resolveServerConfig } from '../../src/config.js';
import { TEST_ADMIN_PASSWORD } from '../helpers/app.js';

/** Resolves with everything the server sends until it ends the connection. */
function readUntilEnd(socket: Socket): Promise<string> {
  let received = '';
  socket.on('data', (b: Buffer) => (received += b.toString('latin1')));
  return new Promise((resolve) => socket.once('end', () => resolve(received)));
}

void test('a request in flight when the server closes is answered with Connection: close, and the close completes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flt-shutdown-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const config = resolveServerConfig({
    env: { FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD, FLOTILLA_LOG_LEVEL: 'silent' },
    flags: { dataDir: dir, listen: '127.0.0.1:0' },
  });
  const { app } = await buildApp({ config, logger: pino({ level: 'silent' }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;

  const body = JSON.stringify({ username: 'admin', password: 'not the password' });
  const socket = connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const ended = readUntilEnd(socket);
  // Headers and half the body: the request is in flight (routed, waiting for its body).
  const arrived = new Promise((resolve) => app.server.once('request', resolve));
  socket.write(
    `POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
  );
  await arrived;

  const closed = app.close();
  // The close has run its preClose hooks and stopped listening; idle connections are gone now.
  while (app.server.listening) await new Promise((resolve) => setImmediate(resolve));
  socket.write(body.slice(10));
  const connectionHeader = await Promise.race([
    ended.then((answer) => /^connection: *(.*)$/im.exec(answer)?.[1]?.trim().toLowerCase()),
    // The answer came with keep-alive: the server holds the connection open after it.
    new Promise<string>((resolve) =>
      socket.on('data', (b: Buffer) => {
        const header = /^connection: *keep-alive/im.exec(b.toString('latin1'));
        if (header) resolve('keep-alive');
      }),
    ),
  ]);
  assert.equal(connectionHeader, 'close', 'the answer closes its connection');
  await ended;
  await closed;
});

void test(
  'a download whose headers went out before the close ends its connection once sent, and the close completes',
  // Without the fix the connection stays open for the keep-alive timeout (72 s): this bounds the wait.
  { timeout: 30_000 },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'flt-shutdown-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const config = resolveServerConfig({
      env: { FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD, FLOTILLA_LOG_LEVEL: 'silent' },
      flags: { dataDir: dir, listen: '127.0.0.1:0' },
    });
    const body = new PassThrough();
    let started!: () => void;
    const headersSent = new Promise<void>((resolve) => (started = resolve));
    const { app } = await buildApp({
      config,
      logger: pino({ level: 'silent' }),
      beforeRoutes: (scope) => {
        scope.get('/test/download', (_request, reply) => {
          body.write('first part\n');
          started();
          return reply.type('text/plain').send(body);
        });
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const ended = readUntilEnd(socket);
    socket.write('GET /test/download HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    await headersSent;
    const closed = app.close();
    while (app.server.listening) await new Promise((resolve) => setImmediate(resolve));
    body.end('last part\n');
    const answer = await ended;
    assert.match(answer, /^HTTP\/1\.1 200/);
    assert.match(answer, /last part/);
    await closed;
  },
);

void test(
  'a WebSocket upgrade that arrives while the close runs is refused and its connection ended, and the close completes',
  // Without the fix the refused upgrade's socket stays open (half-closed) and the close never
  // completes: this bounds the wait.
  { timeout: 30_000 },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'flt-shutdown-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const config = resolveServerConfig({
      env: { FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD, FLOTILLA_LOG_LEVEL: 'silent' },
      flags: { dataDir: dir, listen: '127.0.0.1:0' },
    });
    // A slow shutdown step (a final last-seen flush, a delta computation ending) keeps the server
    // listening while the close runs; an agent told "going away" reconnects at once in that time.
    let closeStarted!: () => void;
    const closing = new Promise<void>((resolve) => (closeStarted = resolve));
    let releaseClose!: () => void;
    const held = new Promise<void>((resolve) => (releaseClose = resolve));
    const { app } = await buildApp({
      config,
      logger: pino({ level: 'silent' }),
      beforeRoutes: (scope) => {
        scope.addHook('preClose', async () => {
          closeStarted();
          await held;
        });
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;

    const closed = app.close();
    await closing;
    const socket = connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const ended = readUntilEnd(socket);
    socket.write(
      'GET /api/v1/device/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    const answer = await ended;
    assert.match(answer, /^HTTP\/1\.1 503/);
    // The client, like `ws`, drops the connection after a refused upgrade.
    socket.end();
    releaseClose();
    await closed;
  },
);
