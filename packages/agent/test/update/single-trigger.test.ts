/**
 * One trigger path (docs/architecture.md "Agent"): a `state-changed` push polls, and only the changed
 * state the poll brings converges, so one push is one poll and one converge pass, never two passes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { DeviceRoutes, ServerCommands } from '@flotilla/protocol';
import { tempDir } from '@flotilla/testkit';
import type { ReleaseSpec } from '../../src/model/release.js';
import { agentConfig, startTestAgent, waitFor } from '../helpers/agent.js';
import { FakeDeviceServer } from '../helpers/fake-server.js';

void test('state-changed on the control channel is one poll and one converge pass', async (t) => {
  const server = new FakeDeviceServer();
  server.pollIntervalMs = 3_600_000;
  await server.start();
  t.after(async () => {
    await server.stop();
    assert.deepEqual(server.unexpected, [], 'the fake server saw nothing unexpected');
  });
  // The real update engine runs; only the assignment it converges to is given here (the fake
  // server has no TUF repository). Each call of it is one converge pass.
  let passes = 0;
  const assignment = (): Promise<ReleaseSpec[]> => {
    passes += 1;
    return Promise.resolve([]);
  };
  const key = server.addRegistrationKey({ autoAccept: true });
  const { agent, lines } = await startTestAgent(
    t,
    agentConfig(join(tempDir(t), 'agent'), { server: server.url }, { FLOTILLA_REGISTRATION_KEY: key }),
    { updates: true, assignment },
  );
  await waitFor('connected', () => agent.deviceId !== null && server.isConnected(agent.deviceId));
  const id = agent.deviceId as string;
  const received = () => lines.filter((l) => l.msg === 'desired state received').length;
  await waitFor('the first state and the pass it brings', () => received() === 1 && passes === 2);
  // The session's start converges once and the first state once more: the baseline.
  const before = passes;
  const polls = server.count('GET', DeviceRoutes.state, 200);

  server.changeState(id, (d) => {
    d.tags = ['changed'];
  });
  // The changed state is handed to the update loop in the same step that logs it.
  await waitFor('the poll brought the new state', () => received() === 2);
  // A pass already asked for is queued in the engine before an operator action that arrives later:
  // once the action is acknowledged, every pass the push caused has run.
  const barrier = server.send(id, ServerCommands.restart, { app: 'not-installed' });
  await waitFor('the action acknowledged', () => server.frames.some((f) => f.message.id === barrier));

  assert.equal(server.count('GET', DeviceRoutes.state, 200) - polls, 1, 'one poll brought the state');
  assert.equal(passes - before, 1, 'one converge pass, not one for the push and one for the poll');
});
