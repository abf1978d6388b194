/**
 * Staged rollouts over real HTTP on SQLite and PostgreSQL (docs/rollouts.md): devices enrolled and
 * driven by their own reports; waves advance one by one, failures pause, resume continues with a
 * fixed release, abort leaves devices that had not started on their release, the soak catches a
 * crash loop, maintenance windows and approvals hold devices back (an injectable clock).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { LogCommands } from '@flotilla/protocol';
import type { Release, Rollout } from '@flotilla/protocol';
import { TestSocket } from '../devices/ws-client.js';
import { createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { ManualClock } from '../helpers/clock.js';
import { publish, treeOf } from '../objects/push.js';
import type { DomainEvent } from '../../src/events/bus.js';
import {
  RolloutClient,
  assertCountsKept,
  enrollFleet,
  failInstall,
  install,
  processStatus,
  report,
} from './fleet.js';
import type { FleetDevice } from './fleet.js';

const counts = (r: Rollout) => r.waves.map((w) => w.counts);

forEachDialect((dialect) => {
  let t: TestApp;
  let url: string;
  let api: RolloutClient;
  let clock: ManualClock;
  let web13: Release;
  let web14: Release;
  let web141: Release;
  const events: DomainEvent[] = [];
  before(async () => {
    clock = new ManualClock(Date.parse('2030-01-01T00:00:00.000Z')); // a Tuesday
    t = await createTestApp({
      dialect,
      clock,
      config: {
        allowServerSideSigning: true,
        deviceTokenTtlMs: 7 * 86_400_000,
        offlineAfterMs: 30 * 86_400_000,
      },
    });
    t.events.subscribe(
      (e) => e.type.startsWith('rollout.'),
      (e) => void events.push(e),
    );
    url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    api = new RolloutClient(url, await t.tokenFor('deployer'));
    web13 = await publish(t, await treeOf({ 'index.html': 'v1.3' }), 'web', '1.3.0');
    web14 = await publish(t, await treeOf({ 'index.html': 'v1.4' }), 'web', '1.4.0');
    web141 = await publish(t, await treeOf({ 'index.html': 'v1.4.1' }), 'web', '1.4.1');
  });
  after(() => t.close());

  /** Devices that already run web 1.3.0 (deployed and committed). */
  async function onOldRelease(n: number, tag: string): Promise<FleetDevice[]> {
    const fleet = await enrollFleet(url, t.adminToken, n, [tag]);
    const res = await fetch(`${url}/api/v1/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ app: 'web', version: '1.3.0', filter: `tags==${tag}` }),
    });
    assert.equal(res.status, 200, await res.text());
    for (const d of fleet) await install(url, d, 'web', web13.targetPath);
    return fleet;
  }

  async function stateVersions(fleet: FleetDevice[]): Promise<number[]> {
    const rows = await t.ctx.db
      .selectFrom('devices')
      .select(['id', 'state_version'])
      .where(
        'id',
        'in',
        fleet.map((d) => d.id),
      )
      .orderBy('id')
      .execute();
    return rows.map((r) => Number(r.state_version));
  }

  void test('a 4-wave rollout advances wave by wave with exact counts, each device assigned once', async () => {
    const fleet = await enrollFleet(url, t.adminToken, 20, ['waves']);
    const byId = new Map(fleet.map((d) => [d.id, d]));
    const before = await stateVersions(fleet);
    const created = await api.create({
      app: 'web',
      version: '1.4.0',
      filter: 'tags==waves',
      waves: ['10%', '25%', '50%', '100%'],
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const id = created.body.id;
    assert.equal(created.body.matched, 20);
    assert.deepEqual(
      created.body.waves.map((w) => w.size),
      [2, 3, 5, 10],
    );
    for (let wave = 0; wave < 4; wave++) {
      const size = [2, 3, 5, 10][wave]!;
      const r = await api.until(
        id,
        `wave ${wave + 1} notified`,
        (r) => r.currentWave === wave && r.waves[wave]!.counts.notified === size,
      );
      // Later waves wait untouched; earlier ones are done.
      for (let later = wave + 1; later < 4; later++)
        assert.equal(r.waves[later]!.counts.pending, r.waves[later]!.size);
      for (let earlier = 0; earlier < wave; earlier++)
        assert.equal(r.waves[earlier]!.counts.succeeded, r.waves[earlier]!.size);
      assert.equal(r.waves[wave]!.state, 'running');
      const ids = await api.phase(id, wave, 'notified');
      assert.equal(ids.length, size);
      for (const deviceId of ids) await install(url, byId.get(deviceId)!, 'web', web14.targetPath);
    }
    const done = await api.until(id, 'completion', (r) => r.state === 'completed');
    assert.deepEqual(
      counts(done).map((c) => c.succeeded),
      [2, 3, 5, 10],
    );
    assert.ok(counts(done).every((c) => c.failed + c.pending + c.notified + c.soaking === 0));
    assert.notEqual(done.stats.installP50Ms, null);
    assert.deepEqual(done.stats.failuresByReason, []);
    assert.deepEqual(
      (await stateVersions(fleet)).map((v, i) => v - before[i]!),
      fleet.map(() => 1),
      'one assignment per device',
    );
    // Events follow their commit (the engine announces in the background, in commit order).
    const ofRollout = () => events.filter((e) => 'rolloutId' in e && e.rolloutId === id).map((e) => e.type);
    for (let i = 0; i < 100 && !ofRollout().includes('rollout.completed'); i++) await sleep(50);
    const mine = ofRollout();
    assert.deepEqual(
      mine.filter((t) => !t.startsWith('rollout.device.')),
      [
        'rollout.created',
        'rollout.wave.started',
        'rollout.wave.started',
        'rollout.wave.started',
        'rollout.wave.started',
        'rollout.completed',
      ],
    );
    assert.equal(mine.filter((t) => t === 'rollout.device.succeeded').length, 20);
    const listed = await fetch(`${url}/api/v1/rollouts?state=completed`, {
      headers: { authorization: `Bearer ${api.token}` },
    });
    assert.ok(((await listed.json()) as { items: Rollout[] }).items.some((r) => r.id === id));
  });

  void test('failures above the threshold pause; resume with a fixed release; abort leaves untouched devices on the old release', async () => {
    const fleet = await onOldRelease(10, 'pause');
    const byId = new Map(fleet.map((d) => [d.id, d]));
    const created = await api.create({
      app: 'web',
      version: '1.4.0',
      filter: 'tags==pause',
      waves: ['20%', '100%'],
      maxFailure: 10,
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const id = created.body.id;
    await api.until(id, 'wave 1 notified', (r) => r.waves[0]!.counts.notified === 2);
    const [bad, good] = await api.phase(id, 0, 'notified');
    await failInstall(url, byId.get(bad!)!, 'web', web14.targetPath, web13.targetPath);
    await install(url, byId.get(good!)!, 'web', web14.targetPath);
    const paused = await api.until(id, 'a pause', (r) => r.state === 'paused');
    assert.match(paused.pausedReason ?? '', /failure threshold: 1 of 2 devices of wave 1 failed/);
    assert.deepEqual(paused.stats.failuresByReason, [{ reason: 'FLT_HEALTH_CHECK_FAILED', count: 1 }]);
    assert.equal(paused.waves[1]!.counts.pending, 8, 'the next wave did not start');
    const why = await api.why(id, bad!);
    assert.equal(why.state, 'failed');
    assert.equal(why.reason, 'FLT_HEALTH_CHECK_FAILED');
    assert.match(why.text, /health check failed/);
    assert.equal((await api.action(id, 'approve')).code, 'FLT_ROLLOUT_STATE_CONFLICT');

    // The fixed release: the failed device gets it, the rollout goes on.
    const resumed = await api.action(id, 'resume', { version: '1.4.1' });
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal(resumed.body.version, '1.4.1');
    // Wait for the failed device itself: the good one's commit may be looked at a pass later (a
    // pass nudged by a report looks at the devices that reported), so a count of one notified
    // device could still be the good one.
    for (const end = Date.now() + 30_000; !(await api.phase(id, 0, 'notified')).includes(bad!);) {
      assert.ok(Date.now() < end, 'the failed device was not assigned the fixed release');
      await sleep(50);
    }
    await install(url, byId.get(bad!)!, 'web', web141.targetPath);
    await api.until(id, 'wave 2 notified', (r) => r.currentWave === 1 && r.waves[1]!.counts.notified === 8);
    const wave2 = await api.phase(id, 1, 'notified');
    // Two devices start downloading; then the operator aborts.
    for (const deviceId of wave2.slice(0, 2))
      await report(url, byId.get(deviceId)!, {
        app: 'web',
        targetPath: web141.targetPath,
        phase: 'downloading',
        bytesDone: 40,
        bytesTotal: 100,
      });
    await api.until(id, 'downloads seen', (r) => r.waves[1]!.counts.downloading === 2);
    const whyDownloading = await api.why(id, wave2[0]!);
    assert.equal(whyDownloading.progress, 40);
    const aborted = await api.action(id, 'abort');
    assert.equal(aborted.status, 200, JSON.stringify(aborted.body));
    assert.equal(aborted.body.state, 'aborted');
    assert.deepEqual(aborted.body.waves[1]!.counts, {
      pending: 0,
      notified: 0,
      downloading: 2,
      installing: 0,
      soaking: 0,
      succeeded: 0,
      failed: 0,
      cancelled: 6,
    });
    const rows = await t.ctx.db
      .selectFrom('device_apps')
      .select(['device_id', 'desired', 'current'])
      .where('app', '=', 'web')
      .where('device_id', 'in', wave2)
      .orderBy('device_id')
      .execute();
    for (const row of rows) {
      const started = wave2.slice(0, 2).includes(row.device_id);
      assert.equal(row.desired, started ? web141.targetPath : web13.targetPath, row.device_id);
      assert.equal(row.current, web13.targetPath);
    }
    assert.match((await api.why(id, wave2[7]!)).text, /aborted before the device started/);
    assert.equal((await api.action(id, 'resume')).code, 'FLT_ROLLOUT_STATE_CONFLICT');
    // The devices are free for another rollout.
    const again = await api.create({ app: 'web', version: '1.4.1', filter: 'tags==pause', waves: ['100%'] });
    assert.equal(again.status, 202, JSON.stringify(again.body));
    assert.equal(again.body.matched, 10);
    assert.equal((await api.action(again.body.id, 'abort')).status, 200);
  });

  void test('a crash loop during the soak is a failure that pauses; a healthy device succeeds after the soak', async () => {
    const fleet = await onOldRelease(4, 'soak');
    const byId = new Map(fleet.map((d) => [d.id, d]));
    const id = (
      await api.create({
        app: 'web',
        version: '1.4.0',
        filter: 'tags==soak',
        waves: ['50%', '100%'],
        soakSeconds: 600,
        maxFailure: 50,
      })
    ).body.id;
    await api.until(id, 'wave 1 notified', (r) => r.waves[0]!.counts.notified === 2);
    const [crashing, healthy] = await api.phase(id, 0, 'notified');
    for (const d of [crashing!, healthy!]) await install(url, byId.get(d)!, 'web', web14.targetPath);
    await api.until(id, 'soaking', (r) => r.waves[0]!.counts.soaking === 2);
    assert.match((await api.why(id, healthy!)).text, /soaking until/);
    const at = clock.now().toISOString();
    const status = (restarts: number) => ({
      app: 'web',
      targetPath: web14.targetPath,
      process: processStatus(restarts, at),
    });
    // The crashing device is connected: the server keeps the tail of its app's output.
    const ws = await TestSocket.open(url, byId.get(crashing!)!.token);
    try {
      await ws.request('hello-1', 'hello', { agentVersion: '0.1.0' });
      await report(url, byId.get(crashing!)!, status(1));
      await report(url, byId.get(crashing!)!, status(2));
      // Two restarts are not a crash loop yet; the third is.
      await report(url, byId.get(crashing!)!, status(3));
      const ask = await ws.next((m) => m.command === LogCommands.logs);
      assert.deepEqual(ask.data, { app: 'web', stream: 'both', maxBytes: 4096 });
      ws.send({
        id: ask.id,
        command: LogCommands.logsResult,
        data: { app: 'web', text: 'panic: config missing\n', truncated: false },
      });
    } finally {
      ws.close();
    }
    const r = await api.until(id, 'the crash loop', (r) => r.waves[0]!.counts.failed === 1);
    assert.equal(r.state, 'running', '1 of 2 is not above 50%');
    let why = await api.why(id, crashing!);
    for (let i = 0; i < 100 && why.logTail === undefined; i++) {
      await sleep(100);
      why = await api.why(id, crashing!);
    }
    assert.equal(why.reason, 'crash-loop');
    assert.match(why.text, /restarted 3 times during the soak/);
    assert.equal(why.logTail, 'panic: config missing\n');
    const viewer = new RolloutClient(url, await t.tokenFor('viewer'));
    assert.equal((await viewer.why(id, crashing!)).logTail, undefined, 'app output only for deployers');
    clock.advance(601_000);
    await report(url, byId.get(healthy!)!, status(0));
    const done = await api.until(id, 'the soak', (r) => r.waves[0]!.counts.succeeded === 1);
    // 1 of 2 succeeded: below the default 100% success, and nothing left to wait for.
    const paused = await api.until(id, 'a pause', (r) => r.state === 'paused');
    assert.match(paused.pausedReason ?? '', /success threshold: 1 of 2/);
    assert.equal(done.waves[1]!.counts.pending, 2);
    assert.deepEqual(paused.stats.failuresByReason, [{ reason: 'crash-loop', count: 1 }]);
    // Resuming without a new release accepts the failure: the next wave starts.
    assert.equal((await api.action(id, 'resume')).status, 200);
    const next = await api.until(id, 'wave 2 notified', (r) => r.waves[1]!.counts.notified === 2);
    assert.equal(next.waves[0]!.counts.failed, 1, 'the crash-looping device stays failed');
    assert.equal((await api.why(id, crashing!)).reason, 'crash-loop');
    await api.action(id, 'abort');
  });

  void test('a download failure is retried after its backoff; a rolled-back release is not (the agent holds it)', async () => {
    const fleet = await onOldRelease(2, 'retry');
    const before = await stateVersions(fleet);
    const id = (
      await api.create({
        app: 'web',
        version: '1.4.0',
        filter: 'tags==retry',
        waves: ['100%'],
        retry: 1,
        maxFailure: 50,
      })
    ).body.id;
    await api.until(id, 'notified', (r) => r.waves[0]!.counts.notified === 2);
    const [flaky, broken] = fleet;
    await report(url, flaky!, {
      app: 'web',
      targetPath: web14.targetPath,
      phase: 'failed',
      running: web13.targetPath,
      error: { code: 'FLT_NETWORK', message: 'connection reset' },
    });
    await failInstall(url, broken!, 'web', web14.targetPath, web13.targetPath);
    const r = await api.until(
      id,
      'a retry scheduled',
      (r) => r.waves[0]!.counts.pending === 1 && r.waves[0]!.counts.failed === 1,
    );
    assert.equal(r.state, 'running');
    const why = await api.why(id, flaky!.id);
    assert.equal(why.retries, 1);
    assert.match(why.text, /failed with FLT_NETWORK; retry 1 of 1 at 20/);
    assert.equal((await api.why(id, broken!.id)).reason, 'FLT_HEALTH_CHECK_FAILED');
    clock.advance(31_000);
    await api.until(id, 'the retry assigned', (r) => r.waves[0]!.counts.notified === 1);
    await install(url, flaky!, 'web', web14.targetPath);
    const paused = await api.until(id, 'a pause', (r) => r.state === 'paused');
    assert.match(paused.pausedReason ?? '', /success threshold: 1 of 2/);
    assert.deepEqual(
      (await stateVersions(fleet)).map((v, i) => v - before[i]!),
      [2, 1],
      'the flaky device was assigned twice, the broken one once',
    );
    await api.action(id, 'abort');
  });

  void test('with --include-new-devices a device that matches later joins the running wave', async () => {
    const [first] = await enrollFleet(url, t.adminToken, 1, ['late']);
    const id = (
      await api.create({
        app: 'web',
        version: '1.4.0',
        filter: 'tags==late',
        waves: ['100%'],
        includeNewDevices: true,
      })
    ).body.id;
    await api.until(id, 'the first notified', (r) => r.waves[0]!.counts.notified === 1);
    const [second] = await enrollFleet(url, t.adminToken, 1, ['late']);
    const r = await api.until(id, 'the newcomer notified', (r) => r.waves[0]!.counts.notified === 2);
    assert.equal(r.matched, 2);
    assert.equal(r.waves[0]!.size, 2);
    for (const d of [first!, second!]) await install(url, d, 'web', web14.targetPath);
    const done = await api.until(id, 'both succeeded', (r) => r.waves[0]!.counts.succeeded === 2);
    assert.equal(done.state, 'running', 'a rollout that takes new devices stays open until aborted');
    assert.equal((await api.action(id, 'abort')).body.state, 'aborted');
  });

  void test('a maintenance window and approvals hold devices back (injectable clock)', async () => {
    const fleet = await onOldRelease(4, 'window');
    const byId = new Map(fleet.map((d) => [d.id, d]));
    // 2030-01-01 is a Tuesday; Helsinki is UTC+2 in winter.
    clock.advance(Date.parse('2030-01-02T00:00:00.000Z') - clock.now().getTime()); // 02:00 in Helsinki
    const id = (
      await api.create({
        app: 'web',
        version: '1.4.0',
        filter: 'tags==window',
        waves: ['50%', '100%'],
        approveWaves: true,
        window: 'Mon-Fri 03:00-05:00 Europe/Helsinki',
      })
    ).body.id;
    // Two ticks later nothing is assigned: the window is closed.
    await sleep(2500);
    let r = await api.get(id);
    assert.equal(r.waves[0]!.counts.pending, 2);
    const first = (await api.devices(id, '?wave=0')).items[0]!.deviceId;
    const why = await api.why(id, first);
    assert.match(
      why.text,
      /outside its maintenance window "Mon-Fri 03:00-05:00 Europe\/Helsinki"; it opens at 2030-01-02T01:00:00.000Z/,
    );
    clock.advance(3_600_000); // 03:00 in Helsinki
    await api.until(id, 'the window opening', (r) => r.waves[0]!.counts.notified === 2);
    for (const d of await api.phase(id, 0, 'notified'))
      await install(url, byId.get(d)!, 'web', web14.targetPath);
    r = await api.until(id, 'the approval gate', (r) => r.state === 'waiting-approval');
    assert.equal(r.waves[1]!.counts.pending, 2);
    assert.match((await api.why(id, (await api.phase(id, 1, 'pending'))[0]!)).text, /waiting for wave 2/);
    const approved = await api.action(id, 'approve');
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    await api.until(id, 'wave 2 notified', (r) => r.waves[1]!.counts.notified === 2);
    for (const d of await api.phase(id, 1, 'notified'))
      await install(url, byId.get(d)!, 'web', web14.targetPath);
    await api.until(id, 'completion', (r) => r.state === 'completed');
    // After the window closes, new work waits again (05:00 Helsinki).
    clock.advance(2 * 3_600_000);
  });

  void test('bad input gets 400s with stable codes and changes nothing; a device is in one active rollout per app', async () => {
    await enrollFleet(url, t.adminToken, 3, ['input']);
    const base = { app: 'web', version: '1.4.0', filter: 'tags==input', waves: ['100%'] };
    const code = async (body: Record<string, unknown>) => (await api.create(body)).code;
    assert.equal(await code({ ...base, waves: ['50%', '10%'] }), 'FLT_WAVES_INVALID');
    assert.equal(await code({ ...base, waves: ['ten'] }), 'FLT_VALIDATION');
    assert.equal(await code({ ...base, waves: [] }), 'FLT_VALIDATION');
    assert.equal(await code({ ...base, window: 'Mon-Fri 25:00-26:00 UTC' }), 'FLT_WINDOW_INVALID');
    assert.equal(await code({ ...base, window: 'Mon-Fri 01:00-05:00 Mars/Olympus' }), 'FLT_WINDOW_INVALID');
    assert.equal(await code({ ...base, filter: 'tags=oops=(' }), 'FLT_FILTER_INVALID');
    assert.equal(await code({ ...base, version: '9.9.9' }), 'FLT_NOT_FOUND');
    assert.equal(await code({ ...base, minSuccess: 101 }), 'FLT_VALIDATION');
    assert.equal(await code({ ...base, extra: 1 }), 'FLT_VALIDATION');
    assert.equal(await code({ ...base, filter: 'tags==nobody' }), 'FLT_ROLLOUT_EMPTY');
    const viewer = new RolloutClient(url, await t.tokenFor('viewer'));
    assert.equal((await viewer.create(base)).code, 'FLT_FORBIDDEN');
    assert.equal((await api.action('rol_nope', 'pause')).code, 'FLT_ROLLOUT_NOT_FOUND');
    assert.equal((await api.action('rol_nope', 'explode')).code, 'FLT_VALIDATION');
    const rows = await t.ctx.db
      .selectFrom('rollouts')
      .select('id')
      .where('filter', '=', 'tags==input')
      .execute();
    assert.deepEqual(rows, []);

    const first = await api.create({ ...base, waves: ['1', '100%'] });
    assert.equal(first.status, 202);
    const second = await api.create(base);
    assert.equal(second.code, 'FLT_ROLLOUT_EMPTY', 'every matching device is in the first rollout');
    const previewed = await fetch(`${url}/api/v1/rollouts/preview`, {
      method: 'POST',
      headers: { authorization: `Bearer ${viewer.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ filter: 'tags==input', waves: ['1', '100%'] }),
    });
    assert.deepEqual(await previewed.json(), {
      matched: 3,
      waves: [
        { index: 0, size: 1 },
        { index: 1, size: 2 },
      ],
    });
    const taken = await fetch(`${url}/api/v1/rollouts/preview`, {
      method: 'POST',
      headers: { authorization: `Bearer ${viewer.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ filter: 'tags==input', waves: ['100%'], app: 'web' }),
    });
    assert.deepEqual(
      await taken.json(),
      { matched: 0, waves: [{ index: 0, size: 0 }] },
      'all in the first rollout',
    );
    const paused = await api.action(first.body.id, 'pause');
    assert.equal(paused.body.state, 'paused');
    assert.equal((await api.action(first.body.id, 'pause')).code, 'FLT_ROLLOUT_STATE_CONFLICT');
    assert.equal((await api.action(first.body.id, 'abort')).status, 200);
  });

  void test('a device that already runs the release counts once its soak passes, without an update', async () => {
    const [device] = await enrollFleet(url, t.adminToken, 1, ['already']);
    const res = await fetch(`${url}/api/v1/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ app: 'web', version: '1.4.0', deviceId: device!.id }),
    });
    assert.equal(res.status, 200, await res.text());
    await install(url, device!, 'web', web14.targetPath);
    const id = (await api.create({ app: 'web', version: '1.4.0', filter: 'tags==already', waves: ['100%'] }))
      .body.id;
    const done = await api.until(id, 'completion', (r) => r.state === 'completed');
    assert.equal(done.waves[0]!.counts.succeeded, 1);
  });

  void test('every rollout route is in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, object> };
    const paths = Object.keys(doc.paths).filter((p) => p.startsWith('/api/v1/rollouts'));
    assert.deepEqual(paths.sort(), [
      '/api/v1/rollouts',
      '/api/v1/rollouts/preview',
      '/api/v1/rollouts/{id}',
      '/api/v1/rollouts/{id}/devices',
      '/api/v1/rollouts/{id}/devices/{deviceId}/why',
      '/api/v1/rollouts/{id}/{action}',
    ]);
  });

  // Last: it moves the clock past every device token's lifetime.
  void test('a device that goes silent during the soak fails with heartbeat-lost', async () => {
    const fleet = await onOldRelease(1, 'silent');
    const id = (
      await api.create({
        app: 'web',
        version: '1.4.0',
        filter: 'tags==silent',
        waves: ['100%'],
        soakSeconds: 3600,
      })
    ).body.id;
    await api.until(id, 'notified', (r) => r.waves[0]!.counts.notified === 1);
    await install(url, fleet[0]!, 'web', web14.targetPath);
    await api.until(id, 'soaking', (r) => r.waves[0]!.counts.soaking === 1);
    clock.advance(31 * 86_400_000); // past offlineAfterMs (30 days) without a word from the device
    const r = await api.until(id, 'the lost heartbeat', (r) => r.waves[0]!.counts.failed === 1);
    assert.deepEqual(r.stats.failuresByReason, [{ reason: 'heartbeat-lost', count: 1 }]);
    assert.match((await api.why(id, fleet[0]!.id)).text, /failed: heartbeat-lost \(no heartbeat since 2030-/);
    assert.equal(r.state, 'paused');
  });

  void test('each rollout keeps its counts in its row equal to its devices counted (after every test above)', async () => {
    // Waves, failures, retries, resume (acknowledged failures), abort, new devices, approvals, soaks.
    const rows = await t.ctx.db.selectFrom('rollouts').select('id').execute();
    assert.ok(rows.length >= 10, `${rows.length} rollouts`);
    for (const { id } of rows) await assertCountsKept(t.ctx.db, dialect, id);
  });

  void test('a rollout without kept counts (started before migration 013) is counted from its devices, then kept', async () => {
    const rows = await t.ctx.db.selectFrom('rollouts').select(['id', 'state']).execute();
    const shown = new Map<string, Rollout>();
    for (const { id } of rows) shown.set(id, await api.get(id));
    await t.ctx.db.updateTable('rollouts').set({ counts: null }).execute();
    for (const { id } of rows) assert.deepEqual(counts(await api.get(id)), counts(shown.get(id)!), id);
    const open = rows.find((r) => r.state !== 'completed' && r.state !== 'aborted');
    assert.ok(open, 'a rollout still open');
    assert.equal((await api.action(open.id, 'abort')).status, 200);
    await assertCountsKept(t.ctx.db, dialect, open.id);
  });

  void test('install time percentiles are the nearest-rank values of the devices that committed', async () => {
    const rows = await t.ctx.db.selectFrom('rollouts').select('id').execute();
    let seen = 0;
    for (const { id } of rows) {
      const ms = (
        await t.ctx.db
          .selectFrom('rollout_devices')
          .select('install_ms')
          .where('rollout_id', '=', id)
          .where('install_ms', 'is not', null)
          .execute()
      )
        .map((r) => Number(r.install_ms))
        .sort((a, b) => a - b);
      const rank = (p: number) =>
        ms.length === 0 ? null : ms[Math.max(0, Math.ceil((p / 100) * ms.length) - 1)];
      const { stats } = await api.get(id);
      assert.equal(stats.installP50Ms, rank(50), `${id} p50`);
      assert.equal(stats.installP95Ms, rank(95), `${id} p95`);
      if (ms.length > 1) seen++;
    }
    assert.ok(seen > 0, 'a rollout with several installs');
  });
});
