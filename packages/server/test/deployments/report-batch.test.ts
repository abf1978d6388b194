/**
 * `POST /api/v1/device/reports/batch` through real HTTP: reports recorded in order in one
 * transaction, all or none, a refused entry named by `details.index`, bounds on size.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  DEVICE_REPORT_BATCH_ROUTE,
  MAX_REPORTS_PER_BATCH,
  MAX_REPORT_BATCH_BYTES,
  ReleaseRoutes,
} from '@flotilla/protocol';
import type { DeviceAppList, DeviceReport, Release } from '@flotilla/protocol';
import { sql } from 'kysely';
import { acceptedDevice } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { publish, treeOf } from '../objects/push.js';

interface Answer {
  status: number;
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

forEachDialect((dialect) => {
  let t: TestApp;
  let url: string;
  let web1: Release;
  let web2: Release;
  before(async () => {
    t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
    web1 = await publish(t, await treeOf({ 'index.html': 'v1' }), 'web', '1.0.0');
    web2 = await publish(t, await treeOf({ 'index.html': 'v2' }), 'web', '2.0.0');
    url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(() => t.close());

  /** POSTs a body (an object, or raw text) to the batch route over HTTP. */
  async function post(token: string, body: unknown): Promise<Answer> {
    const res = await fetch(`${url}${DEVICE_REPORT_BATCH_ROUTE}`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status === 204) return { status: 204 };
    return { status: res.status, error: (JSON.parse(text) as { error: Answer['error'] }).error };
  }

  async function deviceWithWeb1() {
    const device = await acceptedDevice(t);
    const res = await t.app.inject({
      method: 'POST',
      url: ReleaseRoutes.deploy,
      headers: bearer(t.adminToken),
      payload: { app: 'web', version: '1.0.0', deviceId: device.id },
    });
    assert.equal(res.statusCode, 200, res.body);
    return device;
  }

  async function web(deviceId: string) {
    const res = await t.app.inject({
      method: 'GET',
      url: `/api/v1/devices/${deviceId}/apps`,
      headers: bearer(t.adminToken),
    });
    return res.json<DeviceAppList>().items.find((a) => a.app === 'web')!;
  }

  async function updateAudits(deviceId: string): Promise<string[]> {
    const rows = await t.ctx.db
      .selectFrom('audit_log')
      .select('action')
      .where('actor_id', '=', deviceId)
      .orderBy('id')
      .execute();
    return rows.map((r) => r.action).filter((a) => a.startsWith('update.'));
  }

  const status = (targetPath: string): DeviceReport => ({
    app: 'web',
    targetPath,
    process: { state: 'running', since: '2026-12-06T10:00:00.000Z', restarts: 0, lastExit: null },
  });

  void test('an update in one batch: recorded in order, events emitted in order after the commit, audited', async () => {
    const device = await deviceWithWeb1();
    const seen: string[] = [];
    const off = t.events.subscribe(
      (e) => 'deviceId' in e && e.deviceId === device.id && e.type.startsWith('device.'),
      (e) => {
        seen.push(e.type);
      },
    );
    try {
      const p = web1.targetPath;
      const answer = await post(device.token, {
        reports: [
          { app: 'web', targetPath: p, phase: 'downloading', bytesDone: 5, bytesTotal: 10 },
          { app: 'web', targetPath: p, phase: 'installing' },
          { app: 'web', targetPath: p, phase: 'committed', bytesFetched: 7 },
          status(p),
        ],
      });
      assert.equal(answer.status, 204, JSON.stringify(answer.error));
      const row = await web(device.id);
      assert.deepEqual(
        [row.phase, row.current, row.bytesDone, row.bytesFetched, row.process?.state],
        ['committed', p, 5, 7, 'running'],
      );
      assert.deepEqual(seen, [
        'device.update.downloading',
        'device.update.installing',
        'device.update.committed',
        'device.app.status',
      ]);
      assert.deepEqual(await updateAudits(device.id), ['update.committed']);
    } finally {
      off();
    }
  });

  void test('the order of a batch is the order applied; the same batch twice ends the same', async () => {
    const device = await deviceWithWeb1();
    const p = web1.targetPath;
    const batch = {
      reports: [
        { app: 'web', targetPath: p, phase: 'committed' },
        { app: 'web', targetPath: p, phase: 'downloading', bytesDone: 1 },
      ],
    };
    assert.equal((await post(device.token, batch)).status, 204);
    let row = await web(device.id);
    assert.deepEqual([row.phase, row.current], ['downloading', p], 'the later entry wins');
    // Sent again (e.g. its answer was lost): the same state.
    assert.equal((await post(device.token, batch)).status, 204);
    row = await web(device.id);
    assert.deepEqual([row.phase, row.current, row.bytesDone], ['downloading', p, 1]);
  });

  void test('a malformed or stale entry fails the batch with its code and index; nothing of it is recorded', async () => {
    const device = await deviceWithWeb1();
    const p = web1.targetPath;
    const malformed = await post(device.token, {
      reports: [
        { app: 'web', targetPath: p, phase: 'downloading', bytesDone: 3 },
        { app: 'web', targetPath: p, phase: 'installing' },
        { app: 'web', targetPath: p, phase: 'exploded' },
      ],
    });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.error?.code, 'FLT_VALIDATION');
    assert.equal(malformed.error?.details?.index, 2);
    assert.equal((await web(device.id)).phase, 'assigned');

    // Stale: web2 was never assigned to this device; the entry before it is rolled back.
    const stale = await post(device.token, {
      reports: [
        { app: 'web', targetPath: p, phase: 'downloading', bytesDone: 3 },
        { app: 'web', targetPath: web2.targetPath, phase: 'health' },
        { app: 'web', targetPath: p, phase: 'committed' },
      ],
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.error?.code, 'FLT_REPORT_STALE');
    assert.deepEqual(stale.error?.details, { app: 'web', assigned: p, index: 1 });
    assert.match(stale.error?.message ?? '', /^report 1: /);
    const row = await web(device.id);
    assert.deepEqual([row.phase, row.current, row.bytesDone], ['assigned', null, null]);
    assert.deepEqual(await updateAudits(device.id), []);

    // The status of an app never assigned: stale too, named by its index.
    const unassigned = await post(device.token, {
      reports: [
        { app: 'web', targetPath: p, phase: 'installing' },
        { ...status(p), app: 'api' },
      ],
    });
    assert.equal(unassigned.error?.code, 'FLT_REPORT_STALE');
    assert.equal(unassigned.error?.details?.index, 1);
    assert.equal((await web(device.id)).phase, 'assigned');
  });

  void test('an upgrade, a repeat and a rollback, each one batch: the row as report by report; on PostgreSQL its audit rows in its one statement', async () => {
    const device = await deviceWithWeb1();
    const [p1, p2] = [web1.targetPath, web2.targetPath];
    const appRow = () =>
      t.ctx.db
        .selectFrom('device_apps')
        .select(['phase', 'current', 'previous', 'process_status', 'error'])
        .where('device_id', '=', device.id)
        .where('app', '=', 'web')
        .executeTakeFirstOrThrow();
    // The recorder's own inserts of this device's audit entries, counted: on PostgreSQL a batch of
    // one form writes them within its one statement instead (no transaction either).
    const audit = t.ctx.audit;
    const recordMany = audit.recordMany.bind(audit);
    let recorded = 0;
    audit.recordMany = (entries, db) => {
      if (entries.some((e) => e.actorId === device.id)) recorded++;
      return recordMany(entries, db);
    };
    try {
      const ok = async (reports: DeviceReport[]) => {
        const before = recorded;
        const answer = await post(device.token, { reports });
        assert.equal(answer.status, 204, JSON.stringify(answer.error));
        return recorded - before;
      };
      const oneForm = dialect === 'postgres' ? 0 : 1;
      assert.equal(
        await ok([
          { app: 'web', targetPath: p1, phase: 'installing' },
          { app: 'web', targetPath: p1, phase: 'committed' },
          status(p1),
        ]),
        oneForm,
      );
      let row = await appRow();
      assert.deepEqual([row.phase, row.current, row.previous], ['committed', p1, null]);
      assert.equal(JSON.parse(row.process_status!).state, 'running');

      const res = await t.app.inject({
        method: 'POST',
        url: ReleaseRoutes.deploy,
        headers: bearer(t.adminToken),
        payload: { app: 'web', version: '2.0.0', deviceId: device.id },
      });
      assert.equal(res.statusCode, 200, res.body);
      // The commit moves what runs: web1 becomes the previous release, its process status goes.
      assert.equal(
        await ok([
          { app: 'web', targetPath: p2, phase: 'installing' },
          { app: 'web', targetPath: p2, phase: 'committed' },
        ]),
        oneForm,
      );
      row = await appRow();
      assert.deepEqual(
        [row.phase, row.current, row.previous, row.process_status],
        ['committed', p2, p1, null],
      );
      // The same commit again with a status: nothing moves, the status stays.
      assert.equal(await ok([{ app: 'web', targetPath: p2, phase: 'committed' }, status(p2)]), oneForm);
      assert.equal(await ok([{ app: 'web', targetPath: p2, phase: 'committed' }]), oneForm);
      row = await appRow();
      assert.deepEqual([row.current, row.previous], [p2, p1]);
      assert.equal(JSON.parse(row.process_status!).state, 'running');
      // A rollback to web1 in one report: web2 becomes the previous release.
      const error = { code: 'FLT_HEALTH', message: 'unhealthy' };
      assert.equal(
        await ok([{ app: 'web', targetPath: p2, phase: 'rolled-back', running: p1, error }]),
        oneForm,
      );
      row = await appRow();
      assert.deepEqual(
        [row.phase, row.current, row.previous, row.process_status, row.error],
        ['rolled-back', p1, p2, null, JSON.stringify(error)],
      );
      // A commit of web1 after web2 was assigned (a stale release, what runs recorded): not the
      // one form, the transaction as before.
      assert.equal(await ok([{ app: 'web', targetPath: p1, phase: 'committed' }]), 1);
      row = await appRow();
      assert.deepEqual([row.phase, row.current, row.previous], ['rolled-back', p1, p2]);
      assert.deepEqual(await updateAudits(device.id), [
        'update.committed',
        'update.committed',
        'update.committed',
        'update.committed',
        'update.rolled-back',
        'update.committed',
      ]);
    } finally {
      audit.recordMany = recordMany;
    }
  });

  void test('a stale entry after entries of the one form rolls all back; counts exact (PostgreSQL and SQLite)', async () => {
    const device = await deviceWithWeb1();
    const p = web1.targetPath;
    const audits = async () =>
      Number(
        (
          await t.ctx.db
            .selectFrom('audit_log')
            .select((eb) => eb.fn.countAll().as('n'))
            .where('actor_id', '=', device.id)
            .executeTakeFirstOrThrow()
        ).n,
      );
    // Audit entries as events: in the outbox or already moved into the log (one snapshot).
    const outbox = async () =>
      Number(
        (
          await sql<{ n: number | string }>`select
            (select count(*) from event_outbox where device_id = ${device.id} and type like 'audit.%')
            + (select count(*) from events where device_id = ${device.id} and type like 'audit.%') as n`.execute(
            t.ctx.db,
          )
        ).rows[0]!.n,
      );
    const [audit0, outbox0] = [await audits(), await outbox()];
    const stale = await post(device.token, {
      reports: [
        { app: 'web', targetPath: p, phase: 'installing' },
        { app: 'web', targetPath: p, phase: 'committed' },
        status(p),
        { app: 'web', targetPath: web2.targetPath, phase: 'installing' },
      ],
    });
    assert.equal(stale.status, 409);
    assert.deepEqual(stale.error?.details, { app: 'web', assigned: p, index: 3 });
    const row = await web(device.id);
    assert.deepEqual([row.phase, row.current, row.process], ['assigned', null, null]);
    assert.deepEqual([await audits(), await outbox()], [audit0, outbox0]);
    // The same batch without the stale entry: one audit row, one outbox (or log) row.
    const answer = await post(device.token, {
      reports: [
        { app: 'web', targetPath: p, phase: 'installing' },
        { app: 'web', targetPath: p, phase: 'committed' },
        status(p),
      ],
    });
    assert.equal(answer.status, 204, JSON.stringify(answer.error));
    assert.deepEqual([await audits(), await outbox()], [audit0 + 1, outbox0 + 1]);
  });

  void test('empty, too many, too large, not JSON: refused as a whole, without an index', async () => {
    const device = await deviceWithWeb1();
    const p = web1.targetPath;
    const empty = await post(device.token, { reports: [] });
    assert.equal(empty.error?.code, 'FLT_VALIDATION');
    assert.equal(empty.error?.details?.index, undefined);
    const many = await post(device.token, {
      reports: Array.from({ length: MAX_REPORTS_PER_BATCH + 1 }, () => ({
        app: 'web',
        targetPath: p,
        phase: 'downloading',
      })),
    });
    assert.equal(many.error?.code, 'FLT_VALIDATION');
    assert.equal(many.error?.details?.index, undefined);
    const huge = await post(device.token, {
      reports: [
        {
          app: 'web',
          targetPath: p,
          phase: 'failed',
          error: { code: 'X', message: 'm', details: 'x'.repeat(MAX_REPORT_BATCH_BYTES) },
        },
      ],
    });
    assert.equal(huge.status, 413);
    assert.equal(huge.error?.code, 'FLT_BODY_TOO_LARGE');
    const notJson = await post(device.token, '{"reports": [');
    assert.equal(notJson.error?.code, 'FLT_BAD_JSON');
    assert.equal((await web(device.id)).phase, 'assigned');
  });

  void test("an operator's token, no token and a revoked device's token (at once, though checked just before) are refused", async () => {
    const device = await deviceWithWeb1();
    const batch = { reports: [{ app: 'web', targetPath: web1.targetPath, phase: 'installing' }] };
    assert.equal((await post(t.adminToken, batch)).status, 401);
    const none = await fetch(`${url}${DEVICE_REPORT_BATCH_ROUTE}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(batch),
    });
    assert.equal(none.status, 401);
    // Both checks below are reused for a few seconds (DEVICE_AUTH_CACHE_MS) unless the device's
    // status changes: the revocation must end them at once.
    assert.equal((await post(device.token, batch)).status, 204);
    const image = () => fetch(`${url}/tuf/image/timestamp.json`, { headers: bearer(device.token) });
    assert.equal((await image()).status, 200);
    const revoked = await t.app.inject({
      method: 'POST',
      url: `/api/v1/devices/${device.id}/revoke`,
      headers: bearer(t.adminToken),
      payload: {},
    });
    assert.ok(revoked.statusCode < 300, revoked.body);
    const after = await post(device.token, batch);
    assert.equal(after.status, 403);
    assert.equal(after.error?.code, 'FLT_DEVICE_REVOKED');
    assert.equal((await image()).status, 403);
  });

  void test('the batch route is in the OpenAPI document, with its body schema', async () => {
    const res = await fetch(`${url}/openapi.json`);
    const doc = (await res.json()) as { paths: Record<string, { post?: { requestBody?: unknown } }> };
    const route = doc.paths[DEVICE_REPORT_BATCH_ROUTE]?.post;
    assert.ok(route, 'documented');
    assert.match(JSON.stringify(route.requestBody), /"reports"/);
    assert.match(JSON.stringify(route.requestBody), /"maxItems":50/);
  });
});
