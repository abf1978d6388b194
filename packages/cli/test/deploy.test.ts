import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { routePath, TufRoutes, Type } from '@flotilla/protocol';
import { parseMetadata } from '@flotilla/node-kit';
import type {
  CreateRegistrationKeyResponse,
  DeployResponse,
  DeployStatus,
  DeviceAppList,
} from '@flotilla/protocol';
import type { ApiClient } from '../src/api/client.js';
import type { PushResult } from '../src/push/push-release.js';
import { createRelease } from '../src/push/releases-api.js';
import { json } from './helpers/memory-io.js';
import { enrollDevice } from '@flotilla/testkit';
import type { TestServer } from './helpers/server.js';
import { apiClient, loggedInServer, randomFiles, tempDir, writeTree } from './release-fixtures.js';

/** The target paths a device's director targets metadata names (timestamp → snapshot → targets). */
async function directorTargets(client: ApiClient, deviceId: string): Promise<string[]> {
  const file = async (name: string) =>
    Buffer.from(
      JSON.stringify(
        await client.request(
          'GET',
          routePath(TufRoutes.directorFile, { deviceId, file: name }),
          Type.Unknown(),
        ),
      ),
    );
  const timestamp = parseMetadata('timestamp', await file('timestamp.json'));
  const snapshot = parseMetadata(
    'snapshot',
    await file(`${timestamp.signed.snapshotMeta.version}.snapshot.json`),
  );
  const version = snapshot.signed.meta['targets.json']?.version;
  assert.ok(version);
  const targets = parseMetadata('targets', await file(`${version}.targets.json`));
  return Object.keys(targets.signed.targets);
}

void describe('flotilla deploy against a real server', () => {
  let srv: TestServer;
  let work: string;
  let canary: string;
  let other: string;
  let targetPath: string;
  let rootObject: string;
  before(async () => {
    srv = await loggedInServer();
    work = await tempDir('flt-cli-deploy-');
    await writeTree(join(work, 'site'), randomFiles(3, 10_000));
    assert.equal((await srv.run(['keys', 'init', '--no-passphrase'])).code, 0);
    const pushed = await srv.run([
      'release',
      'push',
      join(work, 'site'),
      '--app',
      'web',
      '--version',
      '1.0.0',
      '--json',
    ]);
    targetPath = json<PushResult>(pushed).targetPath;
    rootObject = json<PushResult>(pushed).release.rootObject;
    const key = json<CreateRegistrationKeyResponse>(
      await srv.run(['regkeys', 'create', '--name', 'fleet', '--auto-accept', '--json']),
    );
    canary = (await enrollDevice(srv.url, key.secret, { tags: ['canary'] })).deviceId;
    other = (await enrollDevice(srv.url, key.secret, { tags: ['prod'] })).deviceId;
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  void test('deploy to one device (by id prefix): its director metadata names the release', async () => {
    const res = await srv.run(['deploy', 'web@1.0.0', '--device', canary.slice(0, 10), '--json']);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(json<DeployResponse>(res).devices, [canary]);
    const client = await apiClient(srv);
    assert.deepEqual(await directorTargets(client, canary), [targetPath]);
    assert.deepEqual(await directorTargets(client, other), []);
  });

  void test('deploy status and devices apps show the assignment', async () => {
    const status = json<DeployStatus>(await srv.run(['deploy', 'status', 'web@1.0.0', '--json']));
    assert.equal(status.targetPath, targetPath);
    assert.deepEqual(
      status.devices.map((d) => [d.deviceId, d.desired]),
      [[canary, targetPath]],
    );
    const human = await srv.run(['deploy', 'status', 'web@1.0.0']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^web@1\.0\.0: /);
    assert.match(human.stdout, new RegExp(canary.slice(0, 12)));

    const apps = json<DeviceAppList>(await srv.run(['devices', 'apps', canary, '--json']));
    assert.deepEqual(
      apps.items.map((a) => [a.app, a.desired, a.current]),
      [['web', targetPath, null]],
    );
    const table = await srv.run(['devices', 'apps', canary]);
    assert.match(table.stdout, /web\s+-\s+1\.0\.0\s+/);
  });

  void test('deploy with a filter assigns every matching device', async () => {
    const res = json<DeployResponse>(
      await srv.run(['deploy', 'web@1.0.0', '--filter', 'tags==prod', '--json']),
    );
    assert.deepEqual(res.devices, [other]);
    assert.deepEqual(await directorTargets(await apiClient(srv), other), [targetPath]);
    const none = await srv.run(['deploy', 'web@1.0.0', '--filter', 'tags==nowhere']);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stderr, /no device matched/);
  });

  void test('restart and rollback reach only connected devices', async () => {
    for (const action of ['restart', 'rollback']) {
      const res = await srv.run(['devices', action, canary, '--app', 'web']);
      assert.equal(res.code, 1);
      assert.match(res.stderr, /^error \[FLT_DEVICE_OFFLINE\]/);
    }
    const unknownApp = await srv.run(['devices', 'restart', canary, '--app', 'api']);
    assert.equal(unknownApp.code, 1);
    assert.match(unknownApp.stderr, /^error \[FLT_NOT_FOUND\]/);
  });

  void test('bad input: clear codes, nothing assigned', async () => {
    const cases: [string[], number, RegExp][] = [
      [['deploy', 'web@1.0.0'], 2, /give exactly one of --device or --filter/],
      [['deploy', 'web@1.0.0', '--device', canary, '--filter', 'tags==x'], 2, /exactly one/],
      [['deploy', 'web@9.9.9', '--device', canary], 1, /^error \[FLT_NOT_FOUND\]/],
      [['deploy', 'web', '--device', canary], 1, /^error \[FLT_VALIDATION\]: "web" is not a release/],
      [
        ['deploy', 'web@1.0.0', '--device', 'ffffffffffffffffffffffffffffffff'],
        1,
        /^error \[FLT_DEVICE_NOT_FOUND\]/,
      ],
      [['deploy', 'web@1.0.0', '--filter', 'tags=='], 1, /^error \[FLT_FILTER_INVALID\]/],
      [['devices', 'restart', canary, '--app', '../x'], 1, /^error \[FLT_VALIDATION\]: invalid app name/],
    ];
    for (const [argv, code, message] of cases) {
      const res = await srv.run(argv);
      assert.equal(res.code, code, `${argv.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, message, argv.join(' '));
    }
    const status = json<DeployStatus>(await srv.run(['deploy', 'status', 'web@1.0.0', '--json']));
    assert.deepEqual(status.devices.map((d) => d.deviceId).sort(), [canary, other].sort());
  });

  void test('an unsigned release is refused with advice that works: the command it names signs it', async () => {
    // A release created through the API alone (as a push interrupted before signing leaves it).
    const client = await apiClient(srv);
    await createRelease(client, { app: 'web', version: '1.0.1', runtime: 'files', rootObject });
    const refused = await srv.run(['deploy', 'web@1.0.1', '--device', canary]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /FLT_RELEASE_UNSIGNED/);
    const advice = /flotilla (release \S+) <dir> (--app web --version 1\.0\.1)/.exec(refused.stderr);
    assert.ok(advice, refused.stderr);
    const help = await srv.run([...advice[1]!.split(' '), '--help']);
    assert.equal(help.code, 0, `the advice names a command the CLI lacks: ${advice[1]}`);
    const signed = await srv.run([...advice[1]!.split(' '), join(work, 'site'), ...advice[2]!.split(' ')]);
    assert.equal(signed.code, 0, signed.stderr);
    const deployed = await srv.run(['deploy', 'web@1.0.1', '--device', canary, '--json']);
    assert.equal(deployed.code, 0, deployed.stderr);
  });
});
