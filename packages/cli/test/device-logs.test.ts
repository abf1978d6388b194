import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceRoutes, LogCommands } from '@flotilla/protocol';
import { deviceToken, enrollDevice } from '@flotilla/testkit';
import type { CreateRegistrationKeyResponse, WsMessage } from '@flotilla/protocol';
import { WebSocket } from 'ws';
import { json } from './helpers/memory-io.js';
import type { TestServer } from './helpers/server.js';
import { loggedInServer } from './release-fixtures.js';

/** Enrolls a device, gets it a token and opens its control channel; it answers `logs` as an agent would. */
async function connectedDevice(url: string, registrationKey: string) {
  const device = await enrollDevice(url, registrationKey);
  const { deviceId } = device;
  const token = await deviceToken(url, device);
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${DeviceRoutes.ws}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const asked: unknown[] = [];
  const welcomed = new Promise<void>((resolve) => {
    ws.on('message', (raw: Buffer) => {
      const message = JSON.parse(raw.toString('utf8')) as WsMessage;
      if (message.command === 'welcome') resolve();
      if (message.command !== LogCommands.logs) return;
      asked.push(message.data);
      ws.send(
        JSON.stringify({
          id: message.id,
          command: LogCommands.logsResult,
          data: { app: 'web', text: 'listening on :8080\nGET / 200\n', truncated: true },
        }),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ id: 'hello-1', command: 'hello', data: { agentVersion: '0.1.0' } }));
  await welcomed;
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  return {
    deviceId,
    asked,
    close: () => {
      ws.close();
      return closed;
    },
  };
}

void describe('flotilla devices logs against a real server and a connected device', () => {
  let srv: TestServer;
  let device: Awaited<ReturnType<typeof connectedDevice>>;
  let offline: string;
  before(async () => {
    srv = await loggedInServer();
    const key = json<CreateRegistrationKeyResponse>(
      await srv.run(['regkeys', 'create', '--name', 'fleet', '--auto-accept', '--json']),
    );
    device = await connectedDevice(srv.url, key.secret);
    const other = await connectedDevice(srv.url, key.secret);
    offline = other.deviceId;
    await other.close();
  });
  after(async () => {
    await device.close();
    await srv.close();
  });

  void test('prints the text; --json gives the whole answer', async () => {
    const res = await srv.run([
      'devices',
      'logs',
      device.deviceId,
      '--app',
      'web',
      '--stream',
      'stderr',
      '--bytes',
      '4096',
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'listening on :8080\nGET / 200\n');
    assert.match(res.stderr, /older output left out/);
    assert.deepEqual(device.asked.at(-1), { app: 'web', stream: 'stderr', maxBytes: 4096 });

    const asJson = json<{ deviceId: string; app: string; text: string; truncated: boolean }>(
      // --stream (or --bytes) reads the raw tail; without them `devices logs` streams lines.
      await srv.run(['devices', 'logs', device.deviceId, '--app', 'web', '--stream', 'both', '--json']),
    );
    assert.deepEqual(asJson, {
      deviceId: device.deviceId,
      app: 'web',
      text: 'listening on :8080\nGET / 200\n',
      truncated: true,
    });
    assert.deepEqual(device.asked.at(-1), { app: 'web', stream: 'both', maxBytes: 65536 });
  });

  void test('bad input is refused before anything is sent; an offline device is FLT_DEVICE_OFFLINE', async () => {
    const before = device.asked.length;
    const cases: [string[], number, RegExp][] = [
      [['devices', 'logs', device.deviceId, '--app', 'web', '--bytes', '0'], 2, /must be an integer from 1/],
      [['devices', 'logs', device.deviceId, '--app', 'web', '--bytes', '2000000'], 2, /must be an integer/],
      [['devices', 'logs', device.deviceId, '--app', 'web', '--stream', 'journal'], 2, /Allowed choices/],
      [['devices', 'logs', device.deviceId], 2, /--app/],
      [['devices', 'logs', device.deviceId, '--app', '../x'], 1, /^error \[FLT_VALIDATION\]/],
      [
        ['devices', 'logs', device.deviceId, '--app', 'web', '--bytes', '10', '-f'],
        1,
        /^error \[FLT_VALIDATION\]: --bytes\/--stream read a raw tail/,
      ],
      [['devices', 'logs', device.deviceId, '--app', 'web', '--tail', 'x'], 2, /must be an integer/],
      [['devices', 'logs', device.deviceId, '--app', 'web', '--since', 'yesterday'], 2, /duration/],
    ];
    for (const [argv, code, message] of cases) {
      const res = await srv.run(argv);
      assert.equal(res.code, code, `${argv.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, message, argv.join(' '));
    }
    assert.equal(device.asked.length, before);
    const res = await srv.run(['devices', 'logs', offline, '--app', 'web', '--bytes', '1024']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^error \[FLT_DEVICE_OFFLINE\]/);
  });
});
