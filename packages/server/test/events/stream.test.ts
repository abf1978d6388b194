/**
 * The event stream over real HTTP (docs/events.md): every event in commit order, resume with
 * Last-Event-ID, filters, roles, bad input, retention with a `stream.gap`, and a stalled client cut
 * off while the server's memory stays flat.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, test } from 'node:test';
import { EventRoutes, STREAM_GAP_TYPE } from '@flotilla/protocol';
import type { FleetOverview, StreamEvent } from '@flotilla/protocol';
import type { DomainEvent } from '../../src/events/bus.js';
import { acceptedDevice, createKey } from '../devices/fixtures.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { publish, treeOf } from '../objects/push.js';
import { TestSocket } from '../devices/ws-client.js';
import { openStream } from './sse.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function assigned(deviceId: string, n: number, pad = ''): DomainEvent {
  return {
    type: 'device.assigned',
    deviceId,
    app: 'web',
    targetPath: `web/${n}/${pad}`,
    rollout: `dep_${n}`,
    stateVersion: n,
  };
}

async function metric(t: TestApp, name: string): Promise<number> {
  const m = t.ctx.metrics.getSingleMetric(name);
  const value = (await m?.get())?.values[0]?.value;
  return value ?? 0;
}

forEachDialect((dialect) => {
  let t: TestApp;
  let url: string;
  before(async () => {
    t = await createTestApp({
      dialect,
      config: { eventStreamBufferBytes: 4096, eventStreamHeartbeatMs: 1_000, allowServerSideSigning: true },
    });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    assert.ok(address && typeof address === 'object');
    url = `http://127.0.0.1:${address.port}`;
  });
  after(() => t.close());

  void test('every event is delivered once, in order; a reconnect with Last-Event-ID misses nothing', async () => {
    const first = await openStream(url, t.adminToken, '?type=device.assigned&type=rollout.*');
    assert.equal(first.status, 200);
    const emitted: string[] = [];
    for (let i = 0; i < 40; i++) {
      t.events.emit(assigned('dev_order', i));
      emitted.push(`web/${i}/`);
      // A rollout's event, as the engine emits it (its id as `rolloutId`): the log files it under the rollout.
      if (i % 10 === 0) {
        t.events.emit({ type: 'rollout.wave.started', rolloutId: 'ro_x', wave: i, size: 1 });
        emitted.push(`wave ${i}`);
      }
    }
    const label = (e: StreamEvent) =>
      e.type === 'device.assigned' ? String(e.data.targetPath) : `wave ${String(e.data.wave)}`;
    const got = await first.take(12);
    first.close();
    assert.deepEqual(got.map(label), emitted.slice(0, 12));
    const rollout = got.find((e) => e.type === 'rollout.wave.started');
    assert.equal(rollout?.rollout, 'ro_x');
    assert.equal(got[0]?.deviceId, 'dev_order');
    for (let i = 1; i < got.length; i++) assert.ok(got[i]!.seq > got[i - 1]!.seq);

    // Emitted while no client is connected: the log holds them for the next connection.
    for (let i = 40; i < 50; i++) {
      t.events.emit(assigned('dev_order', i));
      emitted.push(`web/${i}/`);
    }
    const second = await openStream(url, t.adminToken, '?type=device.assigned&type=rollout.*', {
      'last-event-id': String(got.at(-1)!.seq),
    });
    const rest = await second.take(emitted.length - 12);
    second.close();
    assert.deepEqual([...got, ...rest].map(label), emitted);
    assert.equal(new Set([...got, ...rest].map((e) => e.seq)).size, emitted.length);
  });

  void test('filters by type pattern and device; heartbeats keep the stream open', async () => {
    const stream = await openStream(url, t.adminToken, '?after=0&type=device.update.*&device=dev_b');
    t.events.emit({
      type: 'device.update.downloading',
      deviceId: 'dev_a',
      app: 'web',
      phase: 'downloading',
      targetPath: 'web/1/x',
    });
    t.events.emit(assigned('dev_b', 1));
    t.events.emit({
      type: 'device.update.committed',
      deviceId: 'dev_b',
      app: 'web',
      phase: 'committed',
      targetPath: 'web/1/x',
      running: 'web/1/x',
    });
    const [only] = await stream.take(1);
    assert.equal(only?.type, 'device.update.committed');
    assert.equal(only?.deviceId, 'dev_b');
    assert.equal(only?.data.running, 'web/1/x');
    while (!stream.comments.some((c) => c.trim() === 'heartbeat'))
      await new Promise((r) => setTimeout(r, 200));
    assert.equal(stream.comments[0]?.trim(), 'caught-up');
    stream.close();
  });

  void test('device presence, enrollment and audit entries are events; viewers never see audit entries', async () => {
    const admin = await openStream(url, t.adminToken);
    const viewer = await openStream(url, await t.tokenFor('viewer'));
    const key = await createKey(t, { name: 'events-key', autoAccept: true });
    assert.ok(key.secret.length > 0);
    const device = await acceptedDevice(t);
    const audit = await admin.until((e) => e.type === 'audit.regkey.create');
    assert.equal((audit.data as { actorType: string }).actorType, 'user');
    assert.ok(!JSON.stringify(admin.received).includes(key.secret), 'no secret in any event');
    const enrolled = await viewer.until((e) => e.type === 'device.enrolled' && e.deviceId === device.id);
    assert.equal(enrolled.data.status, 'accepted');
    await admin.until((e) => e.type === 'audit.device.enroll' && e.deviceId === device.id);
    assert.ok(viewer.received.every((e) => !e.type.startsWith('audit.')));
    admin.close();
    viewer.close();
  });

  void test('a device connecting and disconnecting is device.online then device.offline; accept/revoke are events', async () => {
    const device = await acceptedDevice(t);
    const stream = await openStream(url, await t.tokenFor('viewer'), `?device=${device.id}`);
    while (!stream.comments.some((c) => c.trim() === 'caught-up'))
      await new Promise((r) => setTimeout(r, 20));
    const ws = await TestSocket.open(url, device.token);
    await stream.until((e) => e.type === 'device.online');
    ws.ws.close();
    await ws.closed;
    await stream.until((e) => e.type === 'device.offline');
    const revoke = await fetch(`${url}/api/v1/devices/${device.id}/revoke`, {
      method: 'POST',
      headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'lost' }),
    });
    assert.equal(revoke.status, 200, await revoke.text());
    const revoked = await stream.until((e) => e.type === 'device.revoked');
    assert.deepEqual(revoked.data, { from: 'accepted', reason: 'lost' });
    stream.close();
    assert.deepEqual(
      stream.received.map((e) => e.type),
      ['device.online', 'device.offline', 'device.revoked'],
    );
  });

  void test('retention keeps the newest eventLogMaxEvents, pruned in batches', async () => {
    const small = await createTestApp({ dialect, config: { eventLogMaxEvents: 100 } });
    try {
      for (let i = 0; i < 1_250; i++) small.events.emit(assigned('dev_prune', i));
      await small.eventLog.settle();
      await small.eventLog.prune();
      const rows = await small.ctx.db.selectFrom('events').select(['seq', 'type']).orderBy('seq').execute();
      assert.equal(rows.length, 100);
      const newest = await small.eventLog.read(Number(rows[0]!.seq) - 1, 1_000);
      assert.equal(newest.at(-1)?.data.stateVersion, 1_249);
    } finally {
      await small.close();
    }
  });

  void test('bad Last-Event-ID, after and filters are refused with FLT_VALIDATION; no token, 401', async () => {
    const bad = async (query: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${url}${EventRoutes.events}${query}`, {
        headers: { ...bearer(t.adminToken), ...headers },
      });
      assert.equal(res.status, 400, query);
      const body = (await res.json()) as { error: { code: string } };
      assert.equal(body.error.code, 'FLT_VALIDATION');
    };
    await bad('', { 'last-event-id': 'abc' });
    await bad('', { 'last-event-id': '-1' });
    await bad('?after=12x');
    await bad('?after=99999999999999999999');
    await bad('?type=device..online');
    await bad('?type=*.online');
    await bad('?device=not%20an%20id');
    await bad('?colour=red');
    const anonymous = await fetch(`${url}${EventRoutes.events}`);
    assert.equal(anonymous.status, 401);
  });

  void test('a position the log no longer holds starts with stream.gap, then the oldest held events', async () => {
    for (let i = 0; i < 30; i++) t.events.emit(assigned('dev_gap', i));
    await t.eventLog.settle();
    const oldest = await t.ctx.db
      .selectFrom('events')
      .select((eb) => eb.fn.min('seq').as('seq'))
      .executeTakeFirstOrThrow();
    const newest = await t.ctx.db
      .selectFrom('events')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .executeTakeFirstOrThrow();
    // Prune everything up to 5 before the newest.
    await t.ctx.db
      .deleteFrom('events')
      .where('seq', '<=', Number(newest.seq) - 5)
      .execute();
    const stream = await openStream(url, t.adminToken, `?after=${Number(oldest.seq)}`);
    const [gap, firstHeld] = await stream.take(2);
    stream.close();
    assert.equal(gap?.type, STREAM_GAP_TYPE);
    assert.deepEqual(gap?.data, {
      requestedAfter: Number(oldest.seq),
      oldestHeld: Number(newest.seq) - 4,
      reason: 'pruned',
    });
    assert.equal(firstHeld?.seq, Number(newest.seq) - 4);
  });

  void test('a client that stops reading is cut off during a burst; the server holds only its buffer', async () => {
    const socket = connect({ host: '127.0.0.1', port: Number(new URL(url).port) });
    await once(socket, 'connect');
    socket.write(
      `GET ${EventRoutes.events} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t.adminToken}\r\n\r\n`,
    );
    // The response head arrives once the stream has joined the live feed; from then on the client
    // never reads: the kernel's buffers fill, then the server's.
    await once(socket, 'data');
    socket.pause();
    const streamsBefore = await metric(t, 'flotilla_event_streams');
    const closed = once(socket, 'close');
    socket.on('error', () => undefined);
    const cutBefore = await metric(t, 'flotilla_event_streams_cut_off_total');
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const pad = 'x'.repeat(12_000);
    // 3,000 events of 12 kB: 36 MB, far beyond the socket buffers and the stream's 4 kB.
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 500; i++) t.events.emit(assigned('dev_burst', round * 500 + i, pad));
      await t.eventLog.settle();
      if ((await metric(t, 'flotilla_event_streams_cut_off_total')) > cutBefore) break;
    }
    while ((await metric(t, 'flotilla_event_streams_cut_off_total')) === cutBefore)
      await new Promise((r) => setTimeout(r, 50));
    socket.resume();
    await closed;
    gc();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 16 * 1024 * 1024, `heap grew by ${grown} bytes`);
    assert.equal(await metric(t, 'flotilla_event_streams'), streamsBefore - 1);
  });

  void test('the OpenAPI document declares the stream as text/event-stream and the fleet overview', async () => {
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as {
      paths: Record<
        string,
        Record<
          string,
          {
            parameters?: { name: string; in: string }[];
            responses: Record<string, { content?: Record<string, unknown> }>;
          }
        >
      >;
    };
    const events = doc.paths[EventRoutes.events]?.get;
    assert.ok(events?.responses['200']?.content?.['text/event-stream']);
    assert.ok(events.parameters?.some((p) => p.in === 'header' && p.name === 'last-event-id'));
    assert.ok(events.parameters?.some((p) => p.in === 'query' && p.name === 'type'));
    assert.ok(doc.paths[EventRoutes.fleetOverview]?.get?.responses['200']?.content?.['application/json']);
  });

  void test('fleet overview counts devices per status, online and offline, and releases per app', async () => {
    const web1 = await publish(t, await treeOf({ 'index.html': 'fleet 1' }), 'fleetapp', '1.0.0');
    const web2 = await publish(t, await treeOf({ 'index.html': 'fleet 2' }), 'fleetapp', '2.0.0');
    const [d1, d2, d3, d4] = [
      await acceptedDevice(t),
      await acceptedDevice(t),
      await acceptedDevice(t),
      await acceptedDevice(t),
    ];
    const now = new Date().toISOString();
    const row = (deviceId: string, desired: string | null, current: string | null) => ({
      device_id: deviceId,
      app: 'fleetapp',
      desired,
      rollout: null,
      current,
      previous: null,
      phase: null,
      bytes_done: null,
      bytes_total: null,
      bytes_fetched: null,
      error: null,
      process_status: null,
      updated_at: now,
    });
    await t.ctx.db
      .insertInto('device_apps')
      .values([
        row(d1.id, web1.targetPath, web1.targetPath),
        row(d2.id, web2.targetPath, web1.targetPath),
        row(d3.id, web2.targetPath, web2.targetPath),
        row(d4.id, null, 'fleetapp/0.0.1/gone'),
      ])
      .execute();
    // Silent for an hour: offline.
    await t.ctx.db
      .updateTable('devices')
      .set({ last_seen_at: new Date(Date.now() - 3_600_000).toISOString() })
      .where('id', '=', d4.id)
      .execute();
    const res = await fetch(`${url}${EventRoutes.fleetOverview}`, {
      headers: bearer(await t.tokenFor('viewer')),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as FleetOverview;
    const devices = await t.ctx.db.selectFrom('devices').select(['status', 'last_seen_at']).execute();
    const accepted = devices.filter((d) => d.status === 'accepted');
    assert.equal(body.devices.total, devices.length);
    assert.equal(body.devices.accepted, accepted.length);
    assert.equal(body.devices.offline, 1);
    assert.equal(body.devices.online, accepted.length - 1);
    const app = body.apps.find((a) => a.app === 'fleetapp');
    assert.deepEqual(app, {
      app: 'fleetapp',
      devices: 4,
      updating: 1,
      releases: [
        { version: '1.0.0', targetPath: web1.targetPath, devices: 2 },
        { version: '2.0.0', targetPath: web2.targetPath, devices: 1 },
        { version: null, targetPath: 'fleetapp/0.0.1/gone', devices: 1 },
      ],
    });
  });
});
