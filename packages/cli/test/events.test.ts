/**
 * `flotilla events` and `flotilla fleet` against a real server, and `events --follow` reconnecting
 * with Last-Event-ID against a scripted SSE server that drops its first connection.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { FleetOverview, StreamEvent } from '@flotilla/protocol';
import { runCli } from '../src/program.js';
import { json, memoryIo } from './helpers/memory-io.js';
import { ADMIN_PASSWORD, startTestServer } from './helpers/server.js';
import type { TestServer } from './helpers/server.js';

const lines = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as StreamEvent);

void describe('flotilla events and fleet against a real server', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
    const res = await srv.run(['--server', srv.url, 'login', '--user', 'admin', '--password-stdin'], {
      stdin: `${ADMIN_PASSWORD}\n`,
    });
    assert.equal(res.code, 0, res.stderr);
  });
  after(() => srv.close());

  void test('events --json prints what the log holds, one JSON object per line, in order', async () => {
    const key = await srv.run(['regkeys', 'create', '--name', 'events-cli', '--json']);
    assert.equal(key.code, 0, key.stderr);
    let events: StreamEvent[] = [];
    // The audit entry reaches the log within moments of its commit.
    for (let i = 0; i < 100 && !events.some((e) => e.type === 'audit.regkey.create'); i++) {
      const res = await srv.run(['events', '--json']);
      assert.equal(res.code, 0, res.stderr);
      events = lines(res.stdout);
      if (!events.some((e) => e.type === 'audit.regkey.create')) await new Promise((r) => setTimeout(r, 50));
    }
    const created = events.find((e) => e.type === 'audit.regkey.create');
    assert.ok(created, 'the registration key creation is an event');
    assert.equal(created.data.actorType, 'user');
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.seq > events[i - 1]!.seq);

    const filtered = await srv.run([
      'events',
      '--json',
      '--type',
      'audit.regkey.*',
      '--after',
      String(created.seq - 1),
    ]);
    assert.deepEqual(
      lines(filtered.stdout).map((e) => e.seq),
      [created.seq],
    );
    const human = await srv.run(['events', '--type', 'audit.regkey.create']);
    assert.match(human.stdout, /audit\.regkey\.create/);
  });

  void test('bad filters are refused before anything is sent', async () => {
    const res = await srv.run(['events', '--type', 'device..x']);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /FLT_VALIDATION/);
    const after = await srv.run(['events', '--after', 'abc']);
    assert.notEqual(after.code, 0);
  });

  void test('fleet --json and the table', async () => {
    const res = await srv.run(['fleet', '--json']);
    assert.equal(res.code, 0, res.stderr);
    const overview = json<FleetOverview>(res);
    assert.equal(overview.devices.total, 0);
    assert.deepEqual(overview.apps, []);
    const table = await srv.run(['fleet']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /devices/);
  });
});

void test('events --follow reconnects with Last-Event-ID and misses nothing', async () => {
  const seen: (string | undefined)[] = [];
  const event = (seq: number) =>
    `id: ${seq}\ndata: ${JSON.stringify({
      seq,
      type: 'device.online',
      at: new Date(0).toISOString(),
      deviceId: 'dev_1',
      app: null,
      rollout: null,
      data: {},
    })}\n\n`;
  const server = createServer((req, res) => {
    const lastId = req.headers['last-event-id'];
    seen.push(Array.isArray(lastId) ? lastId[0] : lastId);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (seen.length === 1) {
      // Two events, then the connection drops.
      res.end(`retry: 10\n\n${event(1)}${event(2)}`);
    } else res.write(event(3));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const io = memoryIo({ env: { FLOTILLA_TOKEN: 'flt_at_test' } });
  try {
    const run = runCli(['--server', url, 'events', '-f', '--json'], io);
    while (lines(io.stdout.text || '\n').length < 3) await new Promise((r) => setTimeout(r, 50));
    io.signals.emit('SIGINT');
    assert.equal(await run, 0, io.stderr.text);
    assert.deepEqual(
      lines(io.stdout.text).map((e) => e.seq),
      [1, 2, 3],
    );
    assert.deepEqual(seen, [undefined, '2']);
    assert.match(io.stderr.text, /reconnecting in 1 s after 2/);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
