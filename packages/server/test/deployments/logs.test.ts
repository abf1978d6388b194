import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LOGS_DEFAULT_BYTES, LogCommands } from '@flotilla/protocol';
import type { AppLogs } from '@flotilla/protocol';
import { acceptedDevice } from '../devices/fixtures.js';
import { TestSocket } from '../devices/ws-client.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { errorCode } from '../helpers/http.js';

forEachDialect((dialect) => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ dialect });
    url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => t.close());

  const readLogs = (deviceId: string, query = '', token = t.adminToken) =>
    t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${deviceId}/apps/web/logs${query}`,
      headers: bearer(token),
    });

  async function connected(): Promise<{ id: string; ws: TestSocket }> {
    const device = await acceptedDevice(t);
    const ws = await TestSocket.open(url, device.token);
    await ws.request('hello-1', 'hello', { agentVersion: '0.1.0' });
    return { id: device.id, ws };
  }

  async function auditedReads(deviceId: string): Promise<number> {
    const rows = await t.ctx.db
      .selectFrom('audit_log')
      .select('id')
      .where('action', '=', 'device.logs.read')
      .where('subject_id', '=', deviceId)
      .execute();
    return rows.length;
  }

  void test('the device answers: the operator gets its logs, the read is audited', async () => {
    const { id, ws } = await connected();
    try {
      const pending = readLogs(id, '?maxBytes=2048&stream=stderr');
      const ask = await ws.next((m) => m.command === LogCommands.logs);
      assert.deepEqual(ask.data, { app: 'web', stream: 'stderr', maxBytes: 2048 });
      ws.send({
        id: ask.id,
        command: LogCommands.logsResult,
        data: { app: 'web', text: 'boom\n', truncated: true },
      });
      const res = await pending;
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json<AppLogs>(), { app: 'web', text: 'boom\n', truncated: true });
      assert.equal(await auditedReads(id), 1);

      const defaults = readLogs(id);
      const ask2 = await ws.next((m) => m.command === LogCommands.logs);
      assert.deepEqual(ask2.data, { app: 'web', stream: 'both', maxBytes: LOGS_DEFAULT_BYTES });
      ws.send({
        id: ask2.id,
        command: LogCommands.logsResult,
        data: { app: 'web', text: '', truncated: false },
      });
      assert.equal((await defaults).statusCode, 200);
    } finally {
      ws.close();
    }
  });

  void test('logs need deployer; bad queries are refused before the device is asked', async () => {
    const { id, ws } = await connected();
    try {
      assert.equal(errorCode(await readLogs(id, '', await t.tokenFor('viewer'))), 'FLT_FORBIDDEN');
      assert.equal(errorCode(await readLogs(id, '?maxBytes=2000000')), 'FLT_VALIDATION');
      assert.equal(errorCode(await readLogs(id, '?maxBytes=0')), 'FLT_VALIDATION');
      assert.equal(errorCode(await readLogs(id, '?stream=journal')), 'FLT_VALIDATION');
      assert.equal(errorCode(await readLogs(id, '?other=1')), 'FLT_VALIDATION');
      const badApp = await t.app.inject({
        method: 'GET',
        url: `/api/v1/devices/${id}/apps/..%2Fetc/logs`,
        headers: bearer(t.adminToken),
      });
      assert.equal(badApp.statusCode, 400);
      assert.equal(ws.messages.filter((m) => m.command === LogCommands.logs).length, 0);
      assert.equal(await auditedReads(id), 0);
    } finally {
      ws.close();
    }
  });

  void test('the route is in the OpenAPI document with its query', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{
      paths: Record<string, { get?: { parameters?: { name: string; in: string }[] } }>;
    }>();
    const op = doc.paths['/api/v1/devices/{id}/apps/{app}/logs']?.get;
    assert.ok(op, 'documented');
    const query = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
    assert.deepEqual(query.sort(), ['maxBytes', 'stream']);
  });

  void test('offline device is 409 FLT_DEVICE_OFFLINE; unknown device is 404', async () => {
    const device = await acceptedDevice(t);
    assert.equal(errorCode(await readLogs(device.id)), 'FLT_DEVICE_OFFLINE');
    assert.equal(errorCode(await readLogs('dev_doesnotexist')), 'FLT_DEVICE_NOT_FOUND');
  });

  void test("the device's error keeps its code; a malformed answer is FLT_NETWORK", async () => {
    const { id, ws } = await connected();
    try {
      const notInstalled = readLogs(id);
      const ask = await ws.next((m) => m.command === LogCommands.logs);
      ws.send({
        id: ask.id,
        command: LogCommands.logsResult,
        data: { error: { code: 'FLT_APP_NOT_INSTALLED', message: 'web is not installed' } },
      });
      const res = await notInstalled;
      assert.equal(res.statusCode, 404);
      assert.equal(errorCode(res), 'FLT_APP_NOT_INSTALLED');

      const garbled = readLogs(id);
      const ask2 = await ws.next((m) => m.command === LogCommands.logs);
      ws.send({ id: ask2.id, command: LogCommands.logsResult, data: { text: 42 } });
      assert.equal(errorCode(await garbled), 'FLT_NETWORK');

      for (const code of ['constructor', 'FLT_UNAUTHENTICATED', 'FLT_NOPE']) {
        const steered = readLogs(id);
        const ask4 = await ws.next((m) => m.command === LogCommands.logs);
        ws.send({ id: ask4.id, command: LogCommands.logsResult, data: { error: { code, message: 'x' } } });
        const res4 = await steered;
        assert.equal(res4.statusCode, 500, code);
        assert.equal(errorCode(res4), 'FLT_RUNTIME_FAILED', code);
      }

      const oldAgent = readLogs(id);
      const ask5 = await ws.next((m) => m.command === LogCommands.logs);
      ws.send({
        id: ask5.id,
        command: 'ack',
        data: { ok: false, error: { code: 'FLT_BAD_REQUEST', message: 'unknown command "logs"' } },
      });
      assert.equal(errorCode(await oldAgent), 'FLT_RUNTIME_UNSUPPORTED');

      const otherApp = readLogs(id);
      const ask3 = await ws.next((m) => m.command === LogCommands.logs);
      ws.send({
        id: ask3.id,
        command: LogCommands.logsResult,
        data: { app: 'api', text: 'x', truncated: false },
      });
      assert.equal(errorCode(await otherApp), 'FLT_NETWORK');
      assert.equal(await auditedReads(id), 0);
    } finally {
      ws.close();
    }
  });

  void test('a device that disconnects before answering is FLT_DEVICE_OFFLINE', async () => {
    const { id, ws } = await connected();
    const pending = readLogs(id);
    await ws.next((m) => m.command === LogCommands.logs);
    ws.close();
    assert.equal(errorCode(await pending), 'FLT_DEVICE_OFFLINE');
  });

  void test('no answer is 504 FLT_DEVICE_TIMEOUT; another device cannot answer for it', async () => {
    const asked = await connected();
    const intruder = await connected();
    try {
      const pending = readLogs(asked.id);
      const ask = await asked.ws.next((m) => m.command === LogCommands.logs);
      intruder.ws.send({
        id: ask.id,
        command: LogCommands.logsResult,
        data: { app: 'web', text: 'forged', truncated: false },
      });
      const res = await pending;
      assert.equal(res.statusCode, 504);
      assert.equal(errorCode(res), 'FLT_DEVICE_TIMEOUT');
      // Nothing was wrong with the intruder's connection from its own point of view: it stays open.
      assert.equal(intruder.ws.messages.filter((m) => m.command === 'error').length, 0);
    } finally {
      asked.ws.close();
      intruder.ws.close();
    }
  });
});
