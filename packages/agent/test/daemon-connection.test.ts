import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { DeviceRoutes, ServerCommands, WsClose } from '@flotilla/protocol';
import { openStateDatabase } from '../src/state/db.js';
import { LocalState } from '../src/state/local-state.js';
import { agentConfig, startTestAgent, waitFor } from './helpers/agent.js';
import type { TestAgent } from './helpers/agent.js';
import { FakeDeviceServer } from './helpers/fake-server.js';
import { tempDir } from '@flotilla/testkit';

interface Running extends TestAgent {
  server: FakeDeviceServer;
  dataDir: string;
  id: string;
}

/** A fake server and an enrolled, accepted, connected agent. */
async function connectedAgent(
  t: TestContext,
  setup: (server: FakeDeviceServer) => void = () => undefined,
  env: Record<string, string> = {},
): Promise<Running> {
  const server = new FakeDeviceServer();
  setup(server);
  await server.start();
  t.after(async () => {
    await server.stop();
    assert.deepEqual(server.unexpected, [], 'the fake server saw nothing unexpected');
  });
  const dataDir = join(tempDir(t), 'agent');
  const key = server.addRegistrationKey({ autoAccept: true });
  const running = await startTestAgent(
    t,
    agentConfig(dataDir, { server: server.url }, { FLOTILLA_REGISTRATION_KEY: key, ...env }),
  );
  await waitFor(
    'connected',
    () =>
      running.agent.deviceId !== null &&
      server.isConnected(running.agent.deviceId) &&
      running.agent.lifecycle() === 'RUNNING',
  );
  await waitFor('welcomed', () => server.frames.some((f) => f.message.command === 'hello'));
  return { ...running, server, dataDir, id: running.agent.deviceId as string };
}

void test('an unchanged state is polled with If-None-Match and answered 304', async (t) => {
  const { server } = await connectedAgent(t);
  await waitFor('two 304 polls', () => server.count('GET', DeviceRoutes.state, 304) >= 2);
  assert.equal(server.count('GET', DeviceRoutes.state, 200), 1, 'only the first poll carried a body');
});

void test('state-changed on the control channel makes the agent poll at once, and it acks', async (t) => {
  const { server, id, dataDir } = await connectedAgent(t, (s) => {
    s.pollIntervalMs = 3_600_000;
  });
  await waitFor('first state fetched', () => server.count('GET', DeviceRoutes.state, 200) === 1);
  server.changeState(id, (d) => {
    d.tags = ['changed'];
  });
  await waitFor('a poll fetched the new state', () => server.count('GET', DeviceRoutes.state, 200) === 2);
  const ack = server.frames.find((f) => f.message.command === 'ack');
  assert.ok(ack, 'the push was acknowledged');
  assert.deepEqual(ack.message.data, { ok: true });
  // The cursor is written after the response is handled: wait for it rather than race it.
  const cursorVersion = () => {
    const db = openStateDatabase(join(dataDir, 'state.db'));
    try {
      return new LocalState(db, 'state.db').stateCursor().stateVersion;
    } finally {
      db.close();
    }
  };
  await waitFor('the new state version recorded', () => cursorVersion() === 2);
});

void test('request-inventory reports the facts and acks', async (t) => {
  const { server, id } = await connectedAgent(t);
  await waitFor('initial inventory', () => server.count('PUT', DeviceRoutes.inventory) === 1);
  const requestId = server.send(id, ServerCommands.requestInventory, {});
  await waitFor('ack of the request', () =>
    server.frames.some((f) => f.message.id === requestId && f.message.command === 'ack'),
  );
  assert.equal(server.count('PUT', DeviceRoutes.inventory), 2);
  assert.deepEqual(server.frames.find((f) => f.message.id === requestId)?.message.data, { ok: true });
});

void test('malformed frames are ignored; the channel keeps working', async (t) => {
  const { server, id, agent, lines } = await connectedAgent(t, (s) => {
    s.pollIntervalMs = 3_600_000;
  });
  server.sendRaw(id, 'not json at all');
  server.sendRaw(id, Buffer.from([1, 2, 3]), true);
  server.sendRaw(
    id,
    JSON.stringify({ id: 'x', command: 'state-changed', data: { stateVersion: 'nine' }, extra: true }),
  );
  server.sendRaw(
    id,
    JSON.stringify({ id: 'y', command: ServerCommands.stateChanged, data: { stateVersion: 'nine' } }),
  );
  const unknownId = server.send(id, 'make-coffee', {});
  server.send(id, ServerCommands.welcome, { nonsense: true });
  await waitFor(
    'both replies',
    () =>
      server.frames.some((f) => f.message.id === unknownId) &&
      server.frames.some((f) => f.message.id === 'y'),
  );
  const refused = server.frames.find((f) => f.message.id === 'y')?.message.data as {
    ok: boolean;
    error: { code: string; message: string };
  };
  assert.equal(refused.ok, false);
  assert.equal(refused.error.code, 'FLT_VALIDATION');
  assert.match(refused.error.message, /stateVersion/);
  assert.equal(
    (server.frames.find((f) => f.message.id === unknownId)?.message.data as { ok: boolean }).ok,
    false,
  );
  assert.ok(lines.filter((l) => l.msg === 'ignored a malformed control frame').length >= 3);
  server.changeState(id);
  await waitFor('still polls on push', () => server.count('GET', DeviceRoutes.state, 200) === 2);
  assert.equal(agent.lifecycle(), 'RUNNING');
  assert.equal(server.wsConnections, 1, 'never reconnected');
});

void test('the agent reconnects by itself when the server goes away and comes back', async (t) => {
  const { server, id, agent, lines } = await connectedAgent(t);
  await server.stop();
  await waitFor('the agent notices', () => lines.some((l) => l.msg === 'control channel: reconnecting'));
  await waitFor('a poll fails', () => lines.some((l) => l.msg === 'state poll failed'));
  assert.equal(agent.lifecycle(), 'RUNNING');
  await server.start();
  await waitFor('reconnected', () => server.wsConnections === 2 && server.isConnected(id));
  await waitFor('polling again', () => server.count('GET', DeviceRoutes.state) > 1);
  assert.ok(
    lines.some((l) => l.msg === 'state poll succeeded again') || server.count('GET', DeviceRoutes.state) > 1,
  );
});

void test('expired tokens are renewed and the request retried', async (t) => {
  const { server } = await connectedAgent(t);
  await waitFor('a poll', () => server.count('GET', DeviceRoutes.state) >= 1);
  const tokensBefore = server.count('POST', DeviceRoutes.token);
  server.expireTokens();
  await waitFor('a request refused as expired', () => server.requests.some((r) => r.status === 401));
  const refusedAt = server.requests.findIndex((r) => r.status === 401);
  const refused = server.requests[refusedAt]!;
  await waitFor('the same request succeeds after a renewal', () =>
    server.requests
      .slice(refusedAt + 1)
      .some((r) => r.path === refused.path && r.method === refused.method && r.status < 400),
  );
  assert.equal(server.count('POST', DeviceRoutes.token), tokensBefore + 1, 'exactly one renewal');
});

void test('a connection that goes silent for two heartbeats is dropped and re-established', async (t) => {
  const { server, id, lines } = await connectedAgent(t);
  server.frozen.add(id);
  await waitFor('the agent gives up on the silent connection', () =>
    lines.some((l) => l.msg.startsWith('control channel silent')),
  );
  server.frozen.delete(id);
  await waitFor('reconnected', () => server.wsConnections === 2 && server.isConnected(id));
});

void test('tokens are renewed before they expire, without a refused request', async (t) => {
  const { server } = await connectedAgent(t, (s) => {
    s.tokenTtlMs = 2000;
  });
  await waitFor('two renewals', () => server.count('POST', DeviceRoutes.token) >= 3);
  assert.deepEqual(
    server.requests.filter((r) => r.status === 401),
    [],
  );
});

void test('a change in the facts is reported at the next check', async (t) => {
  const { server, id, dataDir } = await connectedAgent(t, () => undefined, {
    FLOTILLA_INVENTORY_CHECK_INTERVAL_MS: '1s',
  });
  await waitFor('initial inventory', () => server.count('PUT', DeviceRoutes.inventory) === 1);
  mkdirSync(join(dataDir, 'inventory.d'), { recursive: true });
  writeFileSync(join(dataDir, 'inventory.d', 'site.json'), JSON.stringify({ site: 'berlin' }));
  await waitFor('the new fact reached the server', () => server.device(id).facts.site === 'berlin');
  assert.equal(server.count('PUT', DeviceRoutes.inventory), 2);
});

void test('close 4001 renews the token before reconnecting', async (t) => {
  const { server, id } = await connectedAgent(t);
  const tokensBefore = server.count('POST', DeviceRoutes.token);
  server.closeSocket(id, WsClose.unauthenticated, 'token expired');
  await waitFor(
    'reconnected with a new token',
    () => server.wsConnections === 2 && server.count('POST', DeviceRoutes.token) === tokensBefore + 1,
  );
});

void test('close 4003 (revoked) stops all contact, and a restart does not contact the server either', async (t) => {
  const { server, id, agent, lines, dataDir } = await connectedAgent(t);
  // Only the close code says so: the server still honours the token, so any further request would show.
  server.closeSocket(id, WsClose.deviceRevoked, 'revoked by admin');
  await waitFor('revoked', () => agent.lifecycle() === 'REVOKED');
  assert.ok(lines.some((l) => l.level === 50 && l.msg.includes('revoked')));
  const seen = server.requests.length;
  await new Promise((resolve) => setTimeout(resolve, 2500));
  assert.equal(server.requests.length, seen, 'no request after revocation');
  assert.equal(server.isConnected(id), false);
  await agent.stop();
  assert.equal(agent.lifecycle(), 'STOPPED');

  const again = await startTestAgent(t, agentConfig(dataDir, { server: server.url }));
  assert.equal(again.agent.lifecycle(), 'REVOKED');
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(server.requests.length, seen, 'a restarted revoked agent stays quiet');
});

void test('close 4004 (rejected) stops contact', async (t) => {
  const { server, id, agent } = await connectedAgent(t);
  server.closeSocket(id, WsClose.deviceRejected, 'rejected');
  await waitFor('rejected', () => agent.lifecycle() === 'REJECTED');
  const seen = server.requests.length;
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(server.requests.length, seen);
});

void test('a revoked status in a polled state stops contact too', async (t) => {
  const { server, id, agent } = await connectedAgent(t);
  server.device(id).status = 'revoked';
  await waitFor('revoked', () => agent.lifecycle() === 'REVOKED');
  assert.ok(
    server.requests.some((r) => r.status === 403),
    'learnt from a refused request',
  );
});

void test('stop() is graceful: close 1000, STOPPED, done resolves, state kept', async (t) => {
  const { server, agent, dataDir, id } = await connectedAgent(t);
  await agent.stop();
  assert.equal(agent.lifecycle(), 'STOPPED');
  await agent.done;
  await waitFor('the server saw the close', () => server.closeCodes.length === 1);
  assert.deepEqual(server.closeCodes, [WsClose.normal]);
  await agent.stop();
  const db = openStateDatabase(join(dataDir, 'state.db'));
  assert.deepEqual(new LocalState(db, 'state.db').enrollment(), {
    deviceId: id,
    serverUrl: server.url,
    status: 'accepted',
  });
  db.close();
});
