/**
 * Remote-access streams on the server against a hand-driven device connection (a hostile or
 * scripted agent): the operator's tunnel reaches the device, hostile frames are refused without
 * taking the server down, revocation ends streams at once, roles are enforced and audited.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import {
  DeviceRoutes,
  MUX_MAX_DATA,
  MUX_MAX_WINDOW,
  MuxFrameType,
  WS_MAX_FRAME_BYTES,
  WsClose,
  decodeMuxFrame,
  encodeMuxFrame,
  encodeWindow,
} from '@flotilla/protocol';
import type { MuxFrame } from '@flotilla/protocol';
import { acceptedDevice } from '../devices/fixtures.js';
import { TEST_ADMIN_PASSWORD, bearer, createTestApp } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';

/** A device connection that records binary frames and lets the test answer them. */
class FakeDevice {
  readonly frames: MuxFrame[] = [];
  readonly closed: Promise<number>;
  private waiters: (() => void)[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (raw: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      const d = decodeMuxFrame(raw);
      if (d.ok) this.frames.push(d.frame);
      this.waiters.splice(0).forEach((w) => w());
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }

  static async open(url: string, token: string): Promise<FakeDevice> {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${DeviceRoutes.ws}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ id: 'h1', command: 'hello', data: { agentVersion: 'fake' } }));
    return new FakeDevice(ws);
  }

  async next(pred: (f: MuxFrame) => boolean): Promise<MuxFrame> {
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  send(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }
}

/** An operator tunnel WebSocket: its events and binary data. */
class Operator {
  readonly events: { type: string; code?: string }[] = [];
  readonly data: Buffer[] = [];
  readonly closed: Promise<number>;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw: Buffer, isBinary: boolean) => {
      if (isBinary) this.data.push(raw.subarray(1));
      else this.events.push(JSON.parse(raw.toString('utf8')) as { type: string; code?: string });
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }
}

function openOperator(
  url: string,
  deviceId: string,
  token: string,
  query = 'port=22',
): Promise<Operator | number> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/devices/${deviceId}/tunnel?${query}`, {
    headers: bearer(token),
  });
  return new Promise((resolve) => {
    ws.once('open', () => resolve(new Operator(ws)));
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => undefined);
  });
}

let t: TestApp;
let url: string;
before(async () => {
  t = await createTestApp({ dialect: 'sqlite' });
  url = await t.app.listen({ host: '127.0.0.1', port: 0 });
});
after(() => t.close());

async function tunnelActions(deviceId: string): Promise<number> {
  const rows = await t.ctx.db
    .selectFrom('audit_log')
    .select('id')
    .where('action', '=', 'device.tunnel.open')
    .where('subject_id', '=', deviceId)
    .execute();
  return rows.length;
}

async function connectedPair() {
  const device = await acceptedDevice(t);
  const fake = await FakeDevice.open(url, device.token);
  // Wait until the server registered the connection (its welcome answers the hello).
  await new Promise<void>((resolve) => fake.ws.once('message', () => resolve()));
  const op = await openOperator(url, device.id, t.adminToken);
  assert.ok(op instanceof Operator, `upgrade refused: ${typeof op === 'number' ? op : 'no'}`);
  const open = await fake.next((f) => f.type === MuxFrameType.open);
  return { device, fake, op, open };
}

void test('bytes flow both ways between the operator and the device; the open is audited', async () => {
  const { device, fake, op, open } = await connectedPair();
  assert.deepEqual(JSON.parse(Buffer.from(open.payload).toString()), { kind: 'tunnel', port: 22 });
  fake.send(encodeMuxFrame(MuxFrameType.opened, open.stream));
  fake.send(encodeMuxFrame(MuxFrameType.data, open.stream, Buffer.from('from device')));
  op.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('from operator')]));
  const up = await fake.next((f) => f.type === MuxFrameType.data);
  assert.equal(Buffer.from(up.payload).toString(), 'from operator');
  // The server grants the device its window back once the operator's socket took the bytes.
  const grant = await fake.next((f) => f.type === MuxFrameType.window);
  assert.equal(grant.stream, open.stream);
  assert.equal(Buffer.concat(op.data).toString(), 'from device');
  assert.equal(await tunnelActions(device.id), 1);
  fake.send(encodeMuxFrame(MuxFrameType.close, open.stream));
  assert.equal(await op.closed, 1000);
});

void test('a device sending an oversized data frame: the stream ends with FLT_STREAM_PROTOCOL, the server keeps serving', async () => {
  const { fake, op, open } = await connectedPair();
  fake.send(encodeMuxFrame(MuxFrameType.opened, open.stream));
  fake.send(encodeMuxFrame(MuxFrameType.data, open.stream, new Uint8Array(MUX_MAX_DATA + 1)));
  const close = await fake.next((f) => f.type === MuxFrameType.close && f.stream === open.stream);
  assert.match(Buffer.from(close.payload).toString(), /FLT_STREAM_PROTOCOL/);
  assert.equal(await op.closed, 4010);
  assert.ok(op.events.some((e) => e.type === 'error' && e.code === 'FLT_STREAM_PROTOCOL'));
  assert.equal((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
});

void test('a window overflow ends the stream; frames for unknown streams and oversized frames close the connection', async () => {
  const { fake, op, open } = await connectedPair();
  fake.send(encodeMuxFrame(MuxFrameType.opened, open.stream));
  fake.send(encodeWindow(open.stream, MUX_MAX_WINDOW));
  assert.equal(await op.closed, 4010);
  assert.ok(op.events.some((e) => e.code === 'FLT_STREAM_PROTOCOL'));
  // Streams it was never given: counted as bad frames, the connection closes after a few.
  for (let i = 0; i < 10; i++) fake.send(encodeMuxFrame(MuxFrameType.data, 1000 + i, new Uint8Array(1)));
  assert.equal(await fake.closed, WsClose.protocolError);

  const again = await connectedPair();
  again.fake.send(new Uint8Array(WS_MAX_FRAME_BYTES + 10));
  assert.equal(await again.fake.closed, WsClose.protocolError);
  // The operator's stream ended with the connection.
  assert.equal(await again.op.closed, 4010);
  assert.equal((await t.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
});

void test("revoking the device ends its operators' streams at once", async () => {
  const { device, op } = await connectedPair();
  const r = await t.app.inject({
    method: 'POST',
    url: `/api/v1/devices/${device.id}/revoke`,
    headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
    payload: {},
  });
  assert.ok(r.statusCode < 300, r.body);
  assert.equal(await op.closed, WsClose.deviceRevoked);
  assert.ok(op.events.some((e) => e.code === 'FLT_DEVICE_REVOKED'));
});

void test("revoking the operator's token or disabling them ends their streams at once", async () => {
  const device = await acceptedDevice(t);
  const fake = await FakeDevice.open(url, device.token);
  await new Promise<void>((resolve) => fake.ws.once('message', () => resolve()));
  const admin2 = await t.operator('admin');
  const tokens = await t.app.inject({
    method: 'GET',
    url: `/api/v1/tokens?userId=${admin2.user.id}`,
    headers: bearer(admin2.token),
  });
  const tokenId = tokens.json<{ items: { id: string }[] }>().items[0]!.id;
  const op = await openOperator(url, device.id, admin2.token);
  assert.ok(op instanceof Operator);
  await fake.next((f) => f.type === MuxFrameType.open);
  const revoke = await t.app.inject({
    method: 'DELETE',
    url: `/api/v1/tokens/${tokenId}`,
    headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
  });
  assert.ok(revoke.statusCode < 300, revoke.body);
  assert.equal(await op.closed, 4010);
  assert.ok(op.events.some((e) => e.code === 'FLT_FORBIDDEN'));
  // The device was told to close the stream too.
  await fake.next((f) => f.type === MuxFrameType.close);

  const admin3 = await t.operator('admin');
  const op3 = await openOperator(url, device.id, admin3.token);
  assert.ok(op3 instanceof Operator);
  const disable = await t.app.inject({
    method: 'PATCH',
    url: `/api/v1/users/${admin3.user.id}`,
    headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
    payload: { disabled: true },
  });
  assert.ok(disable.statusCode < 300, disable.body);
  assert.equal(await op3.closed, 4010);
  fake.ws.close();
});

void test('tunnels need admin: a deployer and a viewer are refused before anything is opened or audited', async () => {
  const device = await acceptedDevice(t);
  const fake = await FakeDevice.open(url, device.token);
  for (const role of ['viewer', 'deployer'] as const) {
    const refused = await openOperator(url, device.id, await t.tokenFor(role));
    assert.equal(refused, 403);
  }
  assert.equal(await tunnelActions(device.id), 0);
  assert.equal(fake.frames.length, 0);
  const bad = await openOperator(url, device.id, t.adminToken, 'port=0');
  assert.equal(bad, 400);
  fake.ws.close();
});

void test('a cookie session opens the WebSocket only with an Origin of this server (no cross-site hijacking)', async () => {
  const device = await acceptedDevice(t);
  const fake = await FakeDevice.open(url, device.token);
  await new Promise<void>((resolve) => fake.ws.once('message', () => resolve()));
  const login = await t.app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    headers: { 'content-type': 'application/json' },
    payload: { username: 'admin', password: TEST_ADMIN_PASSWORD },
  });
  assert.equal(login.statusCode, 200, login.body);
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  const host = new URL(url).host;
  const attempt = (origin: string | null) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/devices/${device.id}/tunnel?port=22`, {
        headers: { cookie, ...(origin !== null && { origin }) },
      });
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => undefined);
    });
  assert.equal(await attempt('https://evil.example'), 403);
  assert.equal(await attempt(null), 403);
  assert.equal(await attempt(`http://${host}`), 101);
  fake.ws.close();
});

/** Gives the device an app row, as a deployment would. */
async function assign(deviceId: string, app: string): Promise<void> {
  await t.ctx.db
    .insertInto('device_apps')
    .values({
      device_id: deviceId,
      app,
      desired: null,
      rollout: null,
      current: null,
      previous: null,
      phase: null,
      bytes_done: null,
      bytes_total: null,
      bytes_fetched: null,
      error: null,
      process_status: null,
      updated_at: new Date().toISOString(),
    })
    .execute();
}

/** A device connection that answers text commands with `answer(command, data)` (the ack/stats-result data). */
async function scriptedDevice(
  answer: (command: string, data: unknown) => { command: string; data: unknown },
) {
  const device = await acceptedDevice(t);
  const fake = await FakeDevice.open(url, device.token);
  await new Promise<void>((resolve) => fake.ws.once('message', () => resolve()));
  fake.ws.on('message', (raw: Buffer, isBinary: boolean) => {
    if (isBinary) return;
    const m = JSON.parse(raw.toString('utf8')) as { id: string; command: string; data: unknown };
    if (m.command !== 'control' && m.command !== 'stats') return;
    const reply = answer(m.command, m.data);
    fake.ws.send(JSON.stringify({ id: m.id, ...reply }));
  });
  await assign(device.id, 'web');
  return { device, fake };
}

void test('control and stats: the device answers; errors keep their code; an old agent is FLT_RUNTIME_UNSUPPORTED', async () => {
  const asked: unknown[] = [];
  let mode: 'ok' | 'missing' | 'old' | 'hostile' = 'ok';
  const { device, fake } = await scriptedDevice((command, data) => {
    asked.push({ command, data });
    if (mode === 'old')
      return {
        command: 'ack',
        data: { ok: false, error: { code: 'FLT_BAD_REQUEST', message: `unknown command "${command}"` } },
      };
    if (mode === 'missing')
      return command === 'stats'
        ? {
            command: 'stats-result',
            data: { error: { code: 'FLT_APP_NOT_INSTALLED', message: 'web is not installed' } },
          }
        : {
            command: 'ack',
            data: { ok: false, error: { code: 'FLT_APP_NOT_INSTALLED', message: 'web is not installed' } },
          };
    if (mode === 'hostile')
      return {
        command: 'ack',
        data: { ok: false, error: { code: 'FLT_TOKEN_INVALID', message: 'log in again' } },
      };
    return command === 'stats'
      ? {
          command: 'stats-result',
          data: {
            app: 'web',
            services: [{ service: 'web', state: 'running', health: 'none', restarts: 2, pid: 4242 }],
          },
        }
      : { command: 'ack', data: { ok: true } };
  });
  const control = (body: unknown, token = t.adminToken) =>
    t.app.inject({
      method: 'POST',
      url: `/api/v1/devices/${device.id}/apps/web/control`,
      headers: { ...bearer(token), 'content-type': 'application/json' },
      payload: body as Record<string, unknown>,
    });
  const stats = () =>
    t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${device.id}/apps/web/stats`,
      headers: bearer(t.adminToken),
    });

  assert.equal((await control({ action: 'restart', service: 'web' })).statusCode, 204);
  assert.deepEqual(asked.at(-1), {
    command: 'control',
    data: { app: 'web', action: 'restart', service: 'web' },
  });
  const s = await stats();
  assert.equal(s.statusCode, 200, s.body);
  assert.equal(s.json<{ services: { pid: number }[] }>().services[0]!.pid, 4242);

  mode = 'missing';
  assert.equal(
    (await control({ action: 'stop' })).json<{ error: { code: string } }>().error.code,
    'FLT_APP_NOT_INSTALLED',
  );
  assert.equal((await stats()).statusCode, 404);
  mode = 'old';
  assert.equal(
    (await control({ action: 'start' })).json<{ error: { code: string } }>().error.code,
    'FLT_RUNTIME_UNSUPPORTED',
  );
  mode = 'hostile';
  assert.equal(
    (await control({ action: 'start' })).json<{ error: { code: string } }>().error.code,
    'FLT_RUNTIME_FAILED',
  );

  // Refused before the device is asked: bad body, a deployer may, a viewer may not; an app not assigned.
  const before = asked.length;
  assert.equal((await control({ action: 'explode' })).statusCode, 400);
  assert.equal((await control({ action: 'restart' }, await t.tokenFor('viewer'))).statusCode, 403);
  const other = await t.app.inject({
    method: 'POST',
    url: `/api/v1/devices/${device.id}/apps/api/control`,
    headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
    payload: { action: 'restart' },
  });
  assert.equal(other.statusCode, 404);
  assert.equal(asked.length, before);
  const rows = await t.ctx.db
    .selectFrom('audit_log')
    .select(['action', 'details'])
    .where('subject_id', '=', device.id)
    .where('action', 'in', ['device.app.control', 'device.app.stats'])
    .execute();
  // Only what the device carried out: one restart, one stats read.
  assert.deepEqual(rows.map((r) => r.action).sort(), ['device.app.control', 'device.app.stats']);
  fake.ws.close();
});

void test('the routes are in the OpenAPI document', async () => {
  const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{
    paths: Record<string, unknown>;
  }>();
  for (const path of [
    '/api/v1/devices/{id}/apps/{app}/control',
    '/api/v1/devices/{id}/apps/{app}/stats',
    '/api/v1/devices/{id}/apps/{app}/log-stream',
    '/api/v1/devices/{id}/exec',
    '/api/v1/devices/{id}/tunnel',
  ])
    assert.ok(doc.paths[path], path);
});
