import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { DeviceRoutes, FLOTILLA_VERSION, FlotillaError } from '@flotilla/protocol';
import { deviceIdFromPublicKey, publicKeyOfPrivatePem } from '@flotilla/node-kit';
import { readFileSync } from 'node:fs';
import { openStateDatabase } from '../src/state/db.js';
import { identityKeyPath } from '../src/state/identity.js';
import { LocalState } from '../src/state/local-state.js';
import { startAgent } from '../src/daemon.js';
import { agentConfig, memoryLogger, registrationKeyFile, startTestAgent, waitFor } from './helpers/agent.js';
import { FakeDeviceServer } from './helpers/fake-server.js';
import { tempDir } from '@flotilla/testkit';

async function fakeServer(t: TestContext): Promise<FakeDeviceServer> {
  const server = new FakeDeviceServer();
  await server.start();
  t.after(async () => {
    await server.stop();
    assert.deepEqual(server.unexpected, [], 'the fake server saw nothing unexpected');
  });
  return server;
}

void test('first start enrolls with tags and facts; a restart reuses the identity without enrolling again', async (t) => {
  const server = await fakeServer(t);
  const dir = tempDir(t);
  const dataDir = join(dir, 'agent');
  const key = server.addRegistrationKey({ autoAccept: true, tags: ['fleet'] });
  const config = agentConfig(dataDir, {
    server: server.url,
    registrationKeyFile: registrationKeyFile(dir, key),
    tags: ['lab', 'arm'],
  });

  const first = await startTestAgent(t, config);
  await waitFor(
    'first agent running and reporting inventory',
    () => first.agent.lifecycle() === 'RUNNING' && server.count('PUT', DeviceRoutes.inventory) >= 1,
  );
  const deviceId = first.agent.deviceId;
  assert.ok(deviceId);
  const publicKey = publicKeyOfPrivatePem(readFileSync(identityKeyPath(dataDir), 'utf8'));
  assert.equal(deviceId, deviceIdFromPublicKey(publicKey));
  const device = server.device(deviceId);
  assert.deepEqual([...device.tags].sort(), ['arm', 'fleet', 'lab']);
  assert.equal(device.facts['agent.version'], FLOTILLA_VERSION);
  assert.equal(typeof device.facts['memory.total_bytes'], 'number');
  assert.equal(server.count('POST', DeviceRoutes.enroll), 1);
  await first.agent.stop();
  assert.equal(first.agent.lifecycle(), 'STOPPED');

  rmSync(config.registrationKeyFile as string);
  const second = await startTestAgent(t, config);
  assert.equal(second.agent.deviceId, deviceId, 'the device id is known before any contact');
  await waitFor(
    'second agent connected',
    () => second.agent.lifecycle() === 'RUNNING' && server.wsConnections === 2,
  );
  assert.equal(server.count('POST', DeviceRoutes.enroll), 1, 'no second enrollment');
  assert.equal(server.count('POST', DeviceRoutes.enrollNonce), 1);
  assert.ok(server.count('POST', DeviceRoutes.token) >= 2, 'each run gets its own token');
});

void test('a pending device waits for an operator, then runs once accepted over the control channel', async (t) => {
  const server = await fakeServer(t);
  server.pollIntervalMs = 60_000;
  const dir = tempDir(t);
  const key = server.addRegistrationKey({ autoAccept: false });
  const { agent, lines } = await startTestAgent(
    t,
    agentConfig(join(dir, 'agent'), { server: server.url }, { FLOTILLA_REGISTRATION_KEY: key }),
  );
  await waitFor(
    'pending and connected',
    () =>
      agent.lifecycle() === 'PENDING_ACCEPTANCE' &&
      agent.deviceId !== null &&
      server.isConnected(agent.deviceId),
  );
  assert.ok(
    lines.some((l) => l.level === 40 && l.msg.includes('an operator must accept it')),
    'the log tells the operator what to do',
  );
  const id = agent.deviceId as string;
  server.changeState(id, (d) => {
    d.status = 'accepted';
  });
  await waitFor('running after acceptance', () => agent.lifecycle() === 'RUNNING');
});

void test('a refused registration key fails the agent with that error code and stops contacting the server', async (t) => {
  const server = await fakeServer(t);
  const dir = tempDir(t);
  const { agent } = await startTestAgent(
    t,
    agentConfig(
      join(dir, 'agent'),
      { server: server.url },
      { FLOTILLA_REGISTRATION_KEY: 'flt_rk_not-a-real-key' },
    ),
  );
  await assert.rejects(
    agent.done,
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_REGKEY_INVALID',
  );
  assert.equal(agent.lifecycle(), 'FAILED');
  assert.equal(agent.deviceId, null);
  assert.equal(server.count('POST', DeviceRoutes.enroll), 1);
  await agent.stop();
  assert.equal(agent.lifecycle(), 'FAILED', 'stop after a failure keeps the failure');
});

void test('enrollment waits out an unreachable server and succeeds when it appears', async (t) => {
  const server = new FakeDeviceServer();
  await server.start();
  const url = server.url;
  await server.stop();
  const dir = tempDir(t);
  const key = server.addRegistrationKey({ autoAccept: true });
  const { agent, lines } = await startTestAgent(
    t,
    agentConfig(join(dir, 'agent'), { server: url }, { FLOTILLA_REGISTRATION_KEY: key }),
  );
  await waitFor('an enrollment failure is logged', () =>
    lines.some((l) => l.msg === 'enrollment failed; retrying'),
  );
  assert.equal(agent.lifecycle(), 'ENROLLING');
  await server.start();
  t.after(() => server.stop());
  await waitFor('enrolled and running', () => agent.lifecycle() === 'RUNNING');
  assert.deepEqual(server.unexpected, []);
});

void test('the server forgetting the device makes the agent enroll again with its registration key', async (t) => {
  const server = await fakeServer(t);
  const dir = tempDir(t);
  const key = server.addRegistrationKey({ autoAccept: true });
  const { agent } = await startTestAgent(
    t,
    agentConfig(join(dir, 'agent'), { server: server.url }, { FLOTILLA_REGISTRATION_KEY: key }),
  );
  await waitFor(
    'running',
    () => agent.lifecycle() === 'RUNNING' && agent.deviceId !== null && server.isConnected(agent.deviceId),
  );
  const id = agent.deviceId as string;
  server.forgetDevice(id);
  await waitFor(
    'enrolled again',
    () =>
      server.count('POST', DeviceRoutes.enroll) === 2 &&
      server.devices.has(id) &&
      agent.lifecycle() === 'RUNNING',
  );
  assert.equal(agent.deviceId, id, 'same key, same device id');
});

void test('start-up problems are clear errors before anything runs', async (t) => {
  const dir = tempDir(t);
  const { logger } = memoryLogger();
  const notEnrolled = agentConfig(join(dir, 'a'), { server: 'http://127.0.0.1:9' });
  await assert.rejects(
    startAgent(notEnrolled, { logger }),
    (e: unknown) =>
      e instanceof FlotillaError && e.code === 'FLT_CONFIG_INVALID' && /registration key/.test(e.message),
  );
  const noServer = agentConfig(join(dir, 'b'), {}, { FLOTILLA_REGISTRATION_KEY: 'flt_rk_whatever' });
  await assert.rejects(
    startAgent(noServer, { logger }),
    (e: unknown) =>
      e instanceof FlotillaError && e.code === 'FLT_CONFIG_INVALID' && /--server/.test(e.message),
  );
  const missingKeyFile = agentConfig(join(dir, 'c'), {
    server: 'http://127.0.0.1:9',
    registrationKeyFile: join(dir, 'nope.key'),
  });
  await assert.rejects(
    startAgent(missingKeyFile, { logger }),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_CONFIG_INVALID' && /ENOENT/.test(e.message),
  );
  writeFileSync(join(dir, 'blocker'), '');
  const unwritable = agentConfig(join(dir, 'blocker', 'agent'), { offline: true });
  await assert.rejects(
    startAgent(unwritable, { logger }),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_IO',
  );
});

void test('offline mode runs from local state without any network contact', async (t) => {
  const server = await fakeServer(t);
  const dir = tempDir(t);
  const dataDir = join(dir, 'agent');
  const key = server.addRegistrationKey({ autoAccept: true });
  const online = await startTestAgent(
    t,
    agentConfig(dataDir, { server: server.url }, { FLOTILLA_REGISTRATION_KEY: key }),
  );
  await waitFor('enrolled', () => online.agent.lifecycle() === 'RUNNING');
  await online.agent.stop();
  const before = server.requests.length;

  const offline = await startTestAgent(t, agentConfig(dataDir, { server: server.url, offline: true }));
  assert.equal(offline.agent.lifecycle(), 'RUNNING');
  assert.equal(offline.agent.deviceId, online.agent.deviceId);
  assert.ok(offline.lines.some((l) => l.msg.startsWith('offline')));
  await offline.agent.stop();
  await offline.agent.done;
  assert.equal(server.requests.length, before, 'no request while offline');
});

void test('a lost identity enrolls as a new device', async (t) => {
  const server = await fakeServer(t);
  const dir = tempDir(t);
  const dataDir = join(dir, 'agent');
  const key = server.addRegistrationKey({ autoAccept: true });
  const config = agentConfig(dataDir, { server: server.url }, { FLOTILLA_REGISTRATION_KEY: key });
  const first = await startTestAgent(t, config);
  await waitFor('enrolled', () => first.agent.lifecycle() === 'RUNNING');
  await first.agent.stop();
  rmSync(join(dataDir, 'identity'), { recursive: true });

  const second = await startTestAgent(t, config);
  assert.ok(second.lines.some((l) => l.msg.includes('device key was missing')));
  await waitFor(
    'enrolled anew',
    () => second.agent.lifecycle() === 'RUNNING' && second.agent.deviceId !== null,
  );
  assert.notEqual(second.agent.deviceId, first.agent.deviceId);
  assert.equal(server.devices.size, 2);
  await second.agent.stop();
  const db = openStateDatabase(join(dataDir, 'state.db'));
  assert.equal(new LocalState(db, 'state.db').enrollment()?.deviceId, second.agent.deviceId);
  db.close();
});
