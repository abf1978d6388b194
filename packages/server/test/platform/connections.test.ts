/**
 * Issue 13 item 3: clients that hold connections without making progress are cut, over-cap
 * connections are refused, and a slow but steady upload is not cut. Real sockets against a
 * listening server (the HTTP layer does not depend on the database, so SQLite only).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { addressKey } from '../../src/http/connections.js';
import { resolveServerConfig } from '../../src/config.js';
import { startServer } from '../../src/main.js';
import type { RunningServer } from '../../src/main.js';
import { TEST_ADMIN_PASSWORD } from '../helpers/app.js';

/** Long enough that a connection still open after it was not cut; far above the 1 s settings. */
const GIVE_UP_MS = 20_000;

interface Conn {
  socket: Socket;
  closed: Promise<void>;
  received: () => string;
}

async function open(port: number): Promise<Conn> {
  const socket = connect({ host: '127.0.0.1', port });
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('utf8')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('close', () => reject(new Error('closed before connecting')));
  });
  return { socket, closed, received: () => data };
}

/** Resolves true when `conn` closes within `ms`, false when it is still open then. */
async function closesWithin(conn: Conn, ms: number): Promise<boolean> {
  const timer = sleep(ms, 'open' as const);
  return (await Promise.race([conn.closed.then(() => 'closed' as const), timer])) === 'closed';
}

async function serverWith(env: Record<string, string>): Promise<{ server: RunningServer; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-conn-'));
  const config = resolveServerConfig({
    env: { FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD, FLOTILLA_LOG_LEVEL: 'silent', ...env },
    flags: { dataDir: dir, listen: '127.0.0.1:0' },
  });
  return { server: await startServer(config), dir };
}

function portOf(server: RunningServer): number {
  return Number(new URL(server.url).port);
}

void describe('connection timeouts', () => {
  let server: RunningServer;
  let dir: string;
  const conns: Conn[] = [];
  before(async () => {
    ({ server, dir } = await serverWith({
      FLOTILLA_HEADERS_TIMEOUT_MS: '1s',
      FLOTILLA_KEEP_ALIVE_TIMEOUT_MS: '1s',
      FLOTILLA_CLIENT_STALL_TIMEOUT_MS: '1s',
      FLOTILLA_MIN_CLIENT_BYTES_PER_SECOND: '200',
    }));
  });
  after(async () => {
    for (const c of conns) c.socket.destroy();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('a client trickling a request body is cut', async () => {
    const conn = await open(portOf(server));
    conns.push(conn);
    conn.socket.write(
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Content-Length: 100000\r\n\r\n{"username":"admin","password":"',
    );
    const trickle = setInterval(() => conn.socket.write('a'), 200);
    try {
      assert.ok(await closesWithin(conn, GIVE_UP_MS), 'the trickling connection was closed');
    } finally {
      clearInterval(trickle);
    }
  });

  void it('an idle keep-alive connection is closed', async () => {
    const conn = await open(portOf(server));
    conns.push(conn);
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    while (!conn.received().includes('"ok"')) await sleep(20);
    assert.match(conn.received(), /^HTTP\/1\.1 200 /);
    assert.ok(await closesWithin(conn, GIVE_UP_MS), 'the idle connection was closed');
  });

  void it('a client that never finishes its headers is cut with 408', async () => {
    const conn = await open(portOf(server));
    conns.push(conn);
    conn.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    let n = 0;
    const trickle = setInterval(() => conn.socket.write(`X-Slow-${n++}: y\r\n`), 200);
    try {
      assert.ok(await closesWithin(conn, GIVE_UP_MS), 'the connection was closed');
    } finally {
      clearInterval(trickle);
    }
    assert.match(conn.received(), /^HTTP\/1\.1 408 /);
    assert.match(conn.received(), /FLT_REQUEST_TIMEOUT/);
  });

  void it('a slow but steady upload is not cut and gets its answer', async () => {
    const conn = await open(portOf(server));
    conns.push(conn);
    // About 4 s of upload at ~40 KB/s (far above 200 B/s), spanning several 1 s windows.
    const password = 'p'.repeat(160 * 1024);
    const body = JSON.stringify({ username: 'admin', password });
    conn.socket.write(
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`,
    );
    for (let i = 0; i < body.length; i += 2048) {
      assert.ok(!conn.socket.destroyed, 'the upload is still connected');
      conn.socket.write(body.slice(i, i + 2048));
      await sleep(50);
    }
    await conn.closed;
    // The whole body arrived and the route answered it (the password is over the schema's limit).
    assert.match(conn.received(), /^HTTP\/1\.1 400 /);
    assert.match(conn.received(), /FLT_VALIDATION/);
  });
});

void describe('connection caps', () => {
  void it('connections over the per-address cap are closed at once; the others keep serving', async () => {
    const { server, dir } = await serverWith({ FLOTILLA_MAX_CONNECTIONS_PER_ADDRESS: '3' });
    const conns: Conn[] = [];
    try {
      for (let i = 0; i < 3; i++) conns.push(await open(portOf(server)));
      const over = await open(portOf(server)).catch(() => null);
      if (over) {
        conns.push(over);
        assert.ok(await closesWithin(over, GIVE_UP_MS), 'the fourth connection was closed');
        assert.equal(over.received(), '');
      }
      const first = conns[0]!;
      first.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      while (!first.received().includes('"ok"')) await sleep(20);
      assert.ok(!(await closesWithin(conns[1]!, 200)), 'the admitted connections stay open');
      // Once one closes, the address may connect again.
      conns[2]!.socket.destroy();
      await conns[2]!.closed;
      await sleep(100);
      const again = await open(portOf(server));
      conns.push(again);
      again.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await again.closed;
      assert.match(again.received(), /^HTTP\/1\.1 200 /);
    } finally {
      for (const c of conns) c.socket.destroy();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  void it('connections over the total cap are closed at once', async () => {
    const { server, dir } = await serverWith({
      FLOTILLA_MAX_CONNECTIONS: '2',
      FLOTILLA_MAX_CONNECTIONS_PER_ADDRESS: '0',
    });
    const conns: Conn[] = [];
    try {
      for (let i = 0; i < 2; i++) conns.push(await open(portOf(server)));
      const over = await open(portOf(server)).catch(() => null);
      if (over) {
        conns.push(over);
        assert.ok(await closesWithin(over, GIVE_UP_MS), 'the third connection was closed');
      }
      const res = conns[1]!;
      res.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await res.closed;
      assert.match(res.received(), /^HTTP\/1\.1 200 /);
    } finally {
      for (const c of conns) c.socket.destroy();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  void it('addresses are counted per IPv4 address and per IPv6 /64', () => {
    assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
  });
});
