/** Last-seen batching: polls are remembered in memory and written on flush and at shutdown. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import pino from 'pino';
import { DeviceRoutes } from '@flotilla/protocol';
import { openDatabase } from '../../src/db/open.js';
import { removeExpired } from '../../src/devices/maintenance.js';
import { Presence } from '../../src/devices/presence.js';
import { bearer, createTestApp, forEachDialect } from '../helpers/app.js';
import { acceptedDevice, enrollNonce } from './fixtures.js';

forEachDialect((dialect) => {
  void it('removeExpired deletes only expired nonces and tokens', async () => {
    const t = await createTestApp({ dialect });
    try {
      const d = await acceptedDevice(t);
      await enrollNonce(t);
      const past = new Date(Date.now() - 1000).toISOString();
      await t.ctx.db.updateTable('device_nonces').set({ expires_at: past }).execute();
      const live = await acceptedDevice(t);
      await t.ctx.db
        .updateTable('device_tokens')
        .set({ expires_at: past })
        .where('device_id', '=', d.id)
        .execute();
      const removed = await removeExpired(t.ctx);
      assert.ok(removed.nonces >= 1);
      assert.equal(removed.tokens, 1);
      const state = await t.app.inject({
        method: 'GET',
        url: DeviceRoutes.state,
        headers: bearer(live.token),
      });
      assert.equal(state.statusCode, 200, 'live tokens stay');
    } finally {
      await t.close();
    }
  });
});

void it('last-seen times of polls are written at shutdown (sqlite file survives the app)', async () => {
  const t = await createTestApp({ dialect: 'sqlite' });
  try {
    const d = await acceptedDevice(t);
    await t.ctx.db.updateTable('devices').set({ last_seen_at: null }).execute();
    assert.equal(
      (await t.app.inject({ method: 'GET', url: DeviceRoutes.state, headers: bearer(d.token) })).statusCode,
      200,
    );
    await t.app.close();
    const reopened = await openDatabase(
      `sqlite:${join(t.dataDir, 'flotilla.db')}`,
      pino({ level: 'silent' }),
    );
    try {
      const row = await reopened.db
        .selectFrom('devices')
        .select('last_seen_at')
        .where('id', '=', d.id)
        .executeTakeFirstOrThrow();
      assert.ok(row.last_seen_at !== null && Date.parse(row.last_seen_at) > Date.now() - 60_000);
    } finally {
      await reopened.close();
    }
  } finally {
    await t.close();
  }
});

forEachDialect((dialect) => {
  void it('one flush writes the last-seen times of many devices, each its own', async () => {
    const t = await createTestApp({ dialect });
    const presence = new Presence(t.ctx);
    try {
      const ids = Array.from({ length: 1200 }, (_, i) => `dev${String(i).padStart(5, '0')}`);
      const rows = ids.map((id) => ({
        id,
        public_key: `pk-${id}`,
        status: 'accepted' as const,
        hostname: null,
        registration_key_id: null,
        enrolled_at: '2026-01-01T00:00:00.000Z',
        status_changed_at: '2026-01-01T00:00:00.000Z',
        status_reason: null,
        last_seen_at: null,
        agent_version: null,
        state_version: 0,
      }));
      for (let i = 0; i < rows.length; i += 200)
        await t.ctx.db
          .insertInto('devices')
          .values(rows.slice(i, i + 200))
          .execute();
      const base = Date.parse('2026-11-23T00:00:00.000Z');
      ids.forEach((id, i) => presence.touch(id, new Date(base + i * 1000)));
      assert.equal(presence.onlineIds().length, ids.length);
      await presence.flush();
      const stored = await t.ctx.db
        .selectFrom('devices')
        .select(['id', 'last_seen_at'])
        .where('id', 'like', 'dev%')
        .orderBy('id')
        .execute();
      assert.equal(stored.length, ids.length);
      stored.forEach((row, i) => assert.equal(row.last_seen_at, new Date(base + i * 1000).toISOString()));
      assert.equal(presence.pendingLastSeen(ids[0]!), undefined, 'flushed entries are forgotten');
    } finally {
      await presence.stop();
      await t.close();
    }
  });
});

forEachDialect((dialect) => {
  void it('/metrics exposes device gauges and counters', async () => {
    const t = await createTestApp({ dialect });
    try {
      const d = await acceptedDevice(t);
      const first = await t.app.inject({ method: 'GET', url: DeviceRoutes.state, headers: bearer(d.token) });
      await t.app.inject({
        method: 'GET',
        url: DeviceRoutes.state,
        headers: { ...bearer(d.token), 'if-none-match': String(first.headers.etag) },
      });
      const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
      assert.match(metrics, /^flotilla_devices\{status="accepted"\} 1$/m);
      assert.match(metrics, /^flotilla_devices\{status="pending"\} 0$/m);
      assert.match(metrics, /^flotilla_devices_online 1$/m);
      assert.match(metrics, /^flotilla_device_websockets 0$/m);
      assert.match(metrics, /^flotilla_device_enrollments_total\{result="enrolled"\} 1$/m);
      assert.match(metrics, /^flotilla_device_state_polls_total\{result="modified"\} 1$/m);
      assert.match(metrics, /^flotilla_device_state_polls_total\{result="not_modified"\} 1$/m);
    } finally {
      await t.close();
    }
  });
});
