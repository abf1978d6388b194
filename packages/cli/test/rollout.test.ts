import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CreateRegistrationKeyResponse, Rollout, RolloutList, RolloutWhy } from '@flotilla/protocol';
import { enrollDevice } from '@flotilla/testkit';
import { json } from './helpers/memory-io.js';
import type { TestServer } from './helpers/server.js';
import { loggedInServer, randomFiles, tempDir, writeTree } from './release-fixtures.js';

void describe('flotilla rollout against a real server', () => {
  let srv: TestServer;
  let work: string;
  const devices: string[] = [];
  before(async () => {
    srv = await loggedInServer();
    work = await tempDir('flt-cli-rollout-');
    await writeTree(join(work, 'site'), randomFiles(2, 1000));
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
    assert.equal(pushed.code, 0, pushed.stderr);
    const key = json<CreateRegistrationKeyResponse>(
      await srv.run(['regkeys', 'create', '--name', 'fleet', '--auto-accept', '--json']),
    );
    for (let i = 0; i < 3; i++)
      devices.push((await enrollDevice(srv.url, key.secret, { tags: ['prod'] })).deviceId);
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  void test('create, ls, show, why, pause, resume, abort, watch: tables and --json', async () => {
    const created = await srv.run([
      'rollout',
      'create',
      '--release',
      'web@1.0.0',
      '--filter',
      'tags==prod',
      '--waves',
      '1,100%',
      '--max-failure',
      '50%',
      '--soak',
      '5m',
      '--retry',
      '2',
      '--json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const r = json<Rollout>(created);
    assert.equal(r.matched, 3);
    assert.deepEqual(
      r.waves.map((w) => w.size),
      [1, 2],
    );
    assert.equal(r.soakSeconds, 300);
    assert.equal(r.maxFailure, 50);
    assert.equal(r.retry, 2);

    const listed = json<RolloutList>(await srv.run(['rollout', 'ls', '--json']));
    assert.deepEqual(
      listed.items.map((i) => i.id),
      [r.id],
    );
    const table = await srv.run(['rollout', 'ls']);
    assert.match(table.stdout, new RegExp(`${r.id}\\s+web@1\\.0\\.0\\s+running`));

    const shown = await srv.run(['rollout', 'show', r.id]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /success ≥ 100%, failure ≤ 50%, soak 5m/);

    const waiting = devices.sort()[2]!;
    const why = json<RolloutWhy>(await srv.run(['rollout', 'why', r.id, waiting.slice(0, 12), '--json']));
    assert.equal(why.deviceId, waiting);
    assert.equal(why.wave, 1);
    assert.match(why.text, /waiting for wave 2/);

    const paused = await srv.run(['rollout', 'pause', r.id]);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /paused \(paused by /);
    const again = await srv.run(['rollout', 'pause', r.id, '--json']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /FLT_ROLLOUT_STATE_CONFLICT/);
    assert.equal(json<Rollout>(await srv.run(['rollout', 'resume', r.id, '--json'])).state, 'running');
    assert.equal(json<Rollout>(await srv.run(['rollout', 'abort', r.id, '--json'])).state, 'aborted');
    const watched = await srv.run(['rollout', 'watch', r.id, '--json']);
    assert.equal(watched.code, 0, watched.stderr);
    assert.equal((JSON.parse(watched.stdout.trim().split('\n').at(-1)!) as Rollout).state, 'aborted');
    const human = await srv.run(['rollout', 'watch', r.id]);
    assert.match(human.stderr, /aborted/);
    const devicesOut = await srv.run(['rollout', 'devices', r.id, '--phase', 'cancelled']);
    assert.match(devicesOut.stdout, /cancelled/);
  });

  void test('bad arguments are refused before any request', async () => {
    const base = ['rollout', 'create', '--release', 'web@1.0.0', '--filter', 'tags==prod'];
    const waves = await srv.run([...base, '--waves', '10%,ten']);
    assert.notEqual(waves.code, 0);
    assert.match(waves.stderr, /comma-separated list of percents or counts/);
    const pct = await srv.run([...base, '--waves', '100%', '--min-success', '150%']);
    assert.match(pct.stderr, /percent from 0 to 100/);
    const backwards = await srv.run([...base, '--waves', '50%,10%']);
    assert.match(backwards.stderr, /FLT_WAVES_INVALID/);
    const window = await srv.run([
      ...base,
      '--waves',
      '100%',
      '--window',
      'Mon-Fri 01:00-05:00 Nowhere/City',
    ]);
    assert.match(window.stderr, /FLT_WINDOW_INVALID/);
  });
});
