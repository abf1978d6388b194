/**
 * The WebSocket gateway on a real listening server with the `ws` client: authentication before
 * the upgrade, commands, malformed frames, replacement, revocation, presence and heartbeats.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { DeviceRoutes, WS_MAX_FRAME_BYTES, WsClose } from '@flotilla/protocol';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { acceptedDevice, createKey, deviceToken, enroll, operatorPost } from './fixtures.js';
import { TestSocket } from './ws-client.js';

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

forEachDialect((dialect) => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({ dialect });
    url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => t.close());

  const refusedWith = async (token: string | null, status: number) => {
    await assert.rejects(TestSocket.open(url, token), (e: unknown) => {
      assert.equal((e as { statusCode?: number }).statusCode, status);
      return true;
    });
  };

  void it('the token is checked before the upgrade: none, operator, unknown → 401; rejected → 403', async () => {
    await refusedWith(null, 401);
    await refusedWith(t.adminToken, 401);
    await refusedWith(`flt_dt_${'c'.repeat(32)}.x`, 401);
    const { secret } = await createKey(t, { name: 'ws-manual' });
    const d = await enroll(t, secret);
    const token = await deviceToken(t, d);
    assert.equal((await operatorPost(t, '/api/v1/devices/:id/reject', d.id, {})).statusCode, 200);
    await refusedWith(token, 403);
  });

  void it('hello → welcome, heartbeat → heartbeat, inventory → ack and stored', async () => {
    const d = await acceptedDevice(t);
    const ws = await TestSocket.open(url, d.token);
    const welcome = await ws.request('h1', 'hello', { agentVersion: '9.9.9' });
    assert.equal(welcome.command, 'welcome');
    assert.deepEqual(Object.keys(welcome.data as object).sort(), [
      'deviceId',
      'heartbeatIntervalMs',
      'stateVersion',
      'status',
    ]);
    assert.equal((welcome.data as { deviceId: string }).deviceId, d.id);
    assert.equal((welcome.data as { status: string }).status, 'accepted');
    assert.equal(
      (welcome.data as { heartbeatIntervalMs: number }).heartbeatIntervalMs,
      t.config.heartbeatIntervalMs,
    );
    const beat = await ws.request('b1', 'heartbeat');
    assert.equal(beat.command, 'heartbeat');
    const ack = await ws.request('i1', 'inventory', { facts: { hostname: 'ws-host', arch: 'riscv64' } });
    assert.deepEqual(ack, { id: 'i1', command: 'ack', data: { ok: true } });
    const shown = await t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${d.id}`,
      headers: bearer(t.adminToken),
    });
    assert.deepEqual(shown.json<{ facts: unknown }>().facts, { hostname: 'ws-host', arch: 'riscv64' });
    const badInventory = await ws.request('i2', 'inventory', { facts: { 'bad name': 1 } });
    assert.equal(badInventory.command, 'ack');
    assert.equal((badInventory.data as { ok: boolean }).ok, false);
    const agent = await t.ctx.db
      .selectFrom('devices')
      .select('agent_version')
      .where('id', '=', d.id)
      .executeTakeFirstOrThrow();
    assert.equal(agent.agent_version, '9.9.9');
    ws.close();
    await ws.closed;
  });

  void it('malformed frames get error replies; repeated abuse closes with 4000', async () => {
    const d = await acceptedDevice(t);
    const ws = await TestSocket.open(url, d.token);
    ws.send('not json');
    assert.equal((await ws.next(() => true)).command, 'error');
    ws.send({ command: 'hello' });
    const missingId = await ws.next(() => true);
    assert.equal(missingId.command, 'error');
    assert.equal((missingId.data as { code: string }).code, 'FLT_VALIDATION');
    const unknown = await ws.request('u1', 'launch-missiles');
    assert.equal(unknown.command, 'error');
    const badHello = await ws.request('h1', 'hello', { agentVersion: 42 });
    assert.equal(badHello.command, 'error');
    // Still usable after bad frames.
    assert.equal((await ws.request('b1', 'heartbeat')).command, 'heartbeat');
    ws.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    const closed = await ws.closed;
    assert.equal(closed.code, WsClose.protocolError);
  });

  void it('an oversize frame closes the connection with 4000', async () => {
    const d = await acceptedDevice(t);
    const ws = await TestSocket.open(url, d.token);
    ws.send({ id: 'big', command: 'inventory', data: { facts: { blob: 'x'.repeat(WS_MAX_FRAME_BYTES) } } });
    assert.equal((await ws.closed).code, WsClose.protocolError);
  });

  void it('a newer connection replaces the older one (4009); presence is audited once each way', async () => {
    const d = await acceptedDevice(t);
    const first = await TestSocket.open(url, d.token);
    await first.request('h', 'hello', { agentVersion: '1' });
    const second = await TestSocket.open(url, d.token);
    assert.equal((await first.closed).code, WsClose.replaced);
    assert.equal((await second.request('b', 'heartbeat')).command, 'heartbeat');
    const shown = await t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${d.id}`,
      headers: bearer(t.adminToken),
    });
    assert.equal(shown.json<{ online: boolean }>().online, true);
    second.close();
    await second.closed;
    const actions = async () =>
      (
        await t.ctx.db
          .selectFrom('audit_log')
          .select('action')
          .where('subject_id', '=', d.id)
          .where('actor_type', '=', 'system')
          .orderBy('id')
          .execute()
      ).map((a) => a.action);
    await waitUntil('device.offline audit', async () => (await actions()).length === 2);
    assert.deepEqual(await actions(), ['device.online', 'device.offline']);
  });

  void it('operator changes are pushed as state-changed', async () => {
    const d = await acceptedDevice(t);
    const ws = await TestSocket.open(url, d.token);
    await ws.request('h', 'hello', { agentVersion: '1' });
    const res = await operatorPost(t, '/api/v1/devices/:id/tags', d.id, { add: ['pushed'] }, t.adminToken);
    const version = res.json<{ stateVersion: number }>().stateVersion;
    const pushed = await ws.next((m) => m.command === 'state-changed');
    assert.deepEqual(pushed.data, { stateVersion: version });
    ws.close();
    await ws.closed;
  });

  void it('revocation closes the open WebSocket at once (4003) and the token is refused', async () => {
    const d = await acceptedDevice(t);
    const ws = await TestSocket.open(url, d.token);
    await ws.request('h', 'hello', { agentVersion: '1' });
    assert.equal((await operatorPost(t, '/api/v1/devices/:id/revoke', d.id, {})).statusCode, 200);
    assert.equal((await ws.closed).code, WsClose.deviceRevoked);
    const state = await t.app.inject({ method: 'GET', url: DeviceRoutes.state, headers: bearer(d.token) });
    assert.equal(state.statusCode, 403);
    await refusedWith(d.token, 403);
  });

  void it('rejecting a pending device closes its connection with 4004', async () => {
    const { secret } = await createKey(t, { name: 'ws-pending' });
    const d = await enroll(t, secret);
    const ws = await TestSocket.open(url, await deviceToken(t, d));
    await ws.request('h', 'hello', { agentVersion: '1' });
    assert.equal((await operatorPost(t, '/api/v1/devices/:id/reject', d.id, {})).statusCode, 200);
    assert.equal((await ws.closed).code, WsClose.deviceRejected);
  });
});

forEachDialect((dialect) => {
  void it('a connection that stops answering pings is terminated; app close says goodbye (1001)', async () => {
    const t = await createTestApp({ dialect, config: { heartbeatIntervalMs: 50 } });
    try {
      const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
      const silent = await acceptedDevice(t);
      const mute = await TestSocket.open(url, silent.token, { autoPong: false });
      const closed = await mute.closed;
      assert.notEqual(closed.code, WsClose.normal);
      const live = await acceptedDevice(t);
      const ws = await TestSocket.open(url, live.token);
      await ws.request('h', 'hello', { agentVersion: '1' });
      await t.app.close();
      assert.equal((await ws.closed).code, WsClose.goingAway);
    } finally {
      await t.close();
    }
  });
});

forEachDialect((dialect) => {
  void it('changes made by another replica reach the connection: state-changed, then revocation', async () => {
    const t = await createTestApp({ dialect, config: { heartbeatIntervalMs: 50 } });
    try {
      const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
      const d = await acceptedDevice(t);
      const ws = await TestSocket.open(url, d.token);
      const welcome = await ws.request('h', 'hello', { agentVersion: '1' });
      const version = (welcome.data as { stateVersion: number }).stateVersion;
      // Written straight to the database, as another replica would: this server's API is not involved.
      await t.ctx.db
        .updateTable('devices')
        .set({ state_version: version + 5 })
        .where('id', '=', d.id)
        .execute();
      const pushed = await ws.next((m) => m.command === 'state-changed');
      assert.deepEqual(pushed.data, { stateVersion: version + 5 });
      await t.ctx.db.updateTable('devices').set({ status: 'revoked' }).where('id', '=', d.id).execute();
      assert.equal((await ws.closed).code, WsClose.deviceRevoked);
    } finally {
      await t.close();
    }
  });
});
