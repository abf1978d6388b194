import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { FlotillaError, LogCommands, WS_MAX_FRAME_BYTES } from '@flotilla/protocol';
import type { LogsRequestData, WsMessage } from '@flotilla/protocol';
import pino from 'pino';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { runConnection } from '../../src/control/connection.js';
import type { ConnectionHandlers } from '../../src/control/connection.js';
import { logsResultFrame } from '../../src/control/logs-frame.js';

/** A real WebSocket server the agent's connection dials; the test drives it frame by frame. */
async function controlServer(t: TestContext, handlers: Partial<ConnectionHandlers>) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const socket = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const abort = new AbortController();
  const ended = runConnection(
    {
      baseUrl: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
      token: 'test',
      logger: pino({ level: 'silent' }),
      heartbeatIntervalMs: 60_000,
      handshakeTimeoutMs: 5_000,
      closeTimeoutMs: 1_000,
      handlers: {
        stateVersion: () => null,
        onWelcome: () => undefined,
        onStateChanged: () => undefined,
        onRequestInventory: () => Promise.resolve(),
        ...handlers,
      },
    },
    abort.signal,
  );
  const ws = await socket;
  const received: WsMessage[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (raw: Buffer) => {
    received.push(JSON.parse(raw.toString('utf8')) as WsMessage);
    waiters.splice(0).forEach((w) => w());
  });
  t.after(async () => {
    abort.abort();
    await ended;
    await new Promise((resolve) => wss.close(resolve));
  });
  return {
    async ask(id: string, data: unknown): Promise<WsMessage> {
      ws.send(JSON.stringify({ id, command: LogCommands.logs, data }));
      for (;;) {
        const reply = received.find((m) => m.id === id);
        if (reply) return reply;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

void test('logs is answered with logs-result carrying the same id', async (t) => {
  const asked: LogsRequestData[] = [];
  const server = await controlServer(t, {
    onLogs: (request) => {
      asked.push(request);
      return { app: request.app, text: 'hello\n', truncated: false };
    },
  });
  const reply = await server.ask('s1', { app: 'web', stream: 'stderr', maxBytes: 100 });
  assert.equal(reply.command, LogCommands.logsResult);
  assert.deepEqual(reply.data, { app: 'web', text: 'hello\n', truncated: false });
  assert.deepEqual(asked, [{ app: 'web', stream: 'stderr', maxBytes: 100 }]);
});

void test('bad requests get a FLT_VALIDATION error and never reach the handler', async (t) => {
  let calls = 0;
  const server = await controlServer(t, {
    onLogs: () => {
      calls += 1;
      return { app: 'web', text: '', truncated: false };
    },
  });
  const bad = [
    undefined,
    { app: '../etc', maxBytes: 10 },
    { app: 'web', maxBytes: 0 },
    { app: 'web', maxBytes: 2 * 1024 * 1024 },
    { app: 'web', maxBytes: 10, stream: 'journal' },
    { app: 'web', maxBytes: 10, path: '/etc/shadow' },
  ];
  for (const [i, data] of bad.entries()) {
    const reply = await server.ask(`b${i}`, data);
    assert.equal(
      (reply.data as { error: { code: string } }).error.code,
      'FLT_VALIDATION',
      JSON.stringify(data),
    );
  }
  assert.equal(calls, 0);
});

void test("the handler's failure is answered with its code; an agent without updates says so", async (t) => {
  const server = await controlServer(t, {
    onLogs: () => {
      throw new FlotillaError('FLT_APP_NOT_INSTALLED', 'web is not installed');
    },
  });
  const reply = await server.ask('e1', { app: 'web', maxBytes: 10 });
  assert.deepEqual(reply.data, { error: { code: 'FLT_APP_NOT_INSTALLED', message: 'web is not installed' } });

  const without = await controlServer(t, {});
  const refused = await without.ask('e2', { app: 'web', maxBytes: 10 });
  assert.equal((refused.data as { error: { code: string } }).error.code, 'FLT_BAD_REQUEST');
});

void test('logs larger than a frame lose their oldest part and are marked truncated', () => {
  const text = `${'\u0001'.repeat(WS_MAX_FRAME_BYTES)}newest line\n`;
  const frame = logsResultFrame('s1', { app: 'web', text, truncated: false });
  assert.ok(Buffer.byteLength(frame) <= WS_MAX_FRAME_BYTES);
  const data = (JSON.parse(frame) as { data: { text: string; truncated: boolean } }).data;
  assert.equal(data.truncated, true);
  assert.ok(data.text.endsWith('newest line\n'));
  assert.ok(text.endsWith(data.text));

  const small = JSON.parse(logsResultFrame('s2', { app: 'web', text: 'ok', truncated: false })) as unknown;
  assert.deepEqual(small, {
    id: 's2',
    command: 'logs-result',
    data: { app: 'web', text: 'ok', truncated: false },
  });
});
