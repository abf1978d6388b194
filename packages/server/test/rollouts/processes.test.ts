/**
 * Rollouts across real server processes: a server SIGKILLed right after committing a wave's
 * assignments comes back and carries on with no device assigned twice (SQLite and PostgreSQL),
 * and two servers on one PostgreSQL run the same rollout without advancing a wave twice.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Release } from '@flotilla/protocol';
import pino from 'pino';
import { openDatabase } from '../../src/db/open.js';
import type { OpenDatabase } from '../../src/db/open.js';
import { createTestApp, testDialects } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { startServerProcess } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { publish, treeOf } from '../objects/push.js';
import { RolloutClient, assertCountsKept, enrollFleet, install } from './fleet.js';
import type { FleetDevice } from './fleet.js';

/** The devices whose director metadata is marked for a re-sign (`director_pending`). */
async function pendingResigns(db: OpenDatabase, ids: readonly string[]): Promise<string[]> {
  const rows = await db.db
    .selectFrom('devices')
    .select('id')
    .where('id', 'in', [...ids])
    .where('director_pending', 'is not', null)
    .orderBy('id')
    .execute();
  return rows.map((r) => r.id);
}

async function stateVersions(db: OpenDatabase, fleet: FleetDevice[]): Promise<Map<string, number>> {
  const rows = await db.db
    .selectFrom('devices')
    .select(['id', 'state_version'])
    .where(
      'id',
      'in',
      fleet.map((d) => d.id),
    )
    .execute();
  return new Map(rows.map((r) => [r.id, Number(r.state_version)]));
}

/** A test app's database and data directory with a signed release, then closed for server processes. */
async function prepared(dialect: 'sqlite' | 'postgres'): Promise<{ t: TestApp; release: Release }> {
  const t = await createTestApp({ dialect, config: { allowServerSideSigning: true } });
  const release = await publish(t, await treeOf({ 'index.html': 'v2' }), 'web', '2.0.0');
  await t.app.close();
  return { t, release };
}

for (const dialect of testDialects()) {
  void test(`${dialect}: a server SIGKILLed after committing a wave's assignments carries on after its restart; no device is assigned twice`, async () => {
    const { t, release } = await prepared(dialect);
    const servers: ServerProcess[] = [];
    let db: OpenDatabase | undefined;
    try {
      const first = await startServerProcess({
        dataDir: t.dataDir,
        database: t.config.database,
        env: { FLOTILLA_TEST_CRASH_AT: 'rollout.after-assign' },
      });
      servers.push(first);
      const fleet = await enrollFleet(first.url, t.adminToken, 12, ['crash']);
      const byId = new Map(fleet.map((d) => [d.id, d]));
      db = await openDatabase(t.config.database, pino({ level: 'silent' }));
      const before = await stateVersions(db, fleet);
      // The engine assigns wave 1 right after the create and kills the process after its commit;
      // the answer may or may not have left before.
      await new RolloutClient(first.url, t.adminToken)
        .create({ app: 'web', version: '2.0.0', filter: 'tags==crash', waves: ['25%', '100%'] })
        .catch(() => undefined);
      assert.equal(await first.exited, 'SIGKILL');
      const row = await db.db.selectFrom('rollouts').select('id').executeTakeFirstOrThrow();
      const assignedBeforeRestart = await stateVersions(db, fleet);
      const bumped = fleet.filter((d) => assignedBeforeRestart.get(d.id)! > before.get(d.id)!);
      assert.equal(bumped.length, 3, 'wave 1 (25% of 12) was committed before the kill');
      const bumpedIds = bumped.map((d) => d.id).sort();
      // Killed before announcing: the re-signs (in the background after the commit) had not run.
      assert.deepEqual(await pendingResigns(db, bumpedIds), bumpedIds, 'wave 1 marked for re-signing');

      const second = await startServerProcess({ dataDir: t.dataDir, database: t.config.database });
      servers.push(second);
      // The restarted server re-signed them from the committed rows before it listened.
      assert.deepEqual(await pendingResigns(db, bumpedIds), [], 'wave 1 re-signed at the start');
      const api = new RolloutClient(second.url, t.adminToken);
      const r = await api.until(row.id, 'wave 1 seen as notified', (r) => r.waves[0]!.counts.notified === 3);
      assert.equal(r.waves[1]!.counts.pending, 9);
      for (const id of await api.phase(row.id, 0, 'notified'))
        await install(second.url, byId.get(id)!, 'web', release.targetPath);
      await api.until(row.id, 'wave 2 notified', (r) => r.waves[1]!.counts.notified === 9);
      for (const id of await api.phase(row.id, 1, 'notified'))
        await install(second.url, byId.get(id)!, 'web', release.targetPath);
      const done = await api.until(row.id, 'completion', (r) => r.state === 'completed');
      assert.deepEqual(
        done.waves.map((w) => w.counts.succeeded),
        [3, 9],
      );
      const afterAll = await stateVersions(db, fleet);
      for (const d of fleet)
        assert.equal(afterAll.get(d.id)! - before.get(d.id)!, 1, `${d.id} assigned once`);
      await assertCountsKept(db.db, dialect, row.id);
    } finally {
      await db?.close();
      for (const s of servers) await s.stop();
      await t.close();
    }
  });
}

void test(
  'two servers on one PostgreSQL run the same rollout: every wave starts once, every device is assigned once',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL not among FLOTILLA_TEST_DIALECTS' },
  async () => {
    const { t, release } = await prepared('postgres');
    const replicaDir = await mkdtemp(join(tmpdir(), 'flt-rollout-replica-'));
    const servers: ServerProcess[] = [];
    let db: OpenDatabase | undefined;
    try {
      await cp(t.dataDir, replicaDir, { recursive: true });
      for (const dataDir of [t.dataDir, replicaDir])
        servers.push(await startServerProcess({ dataDir, database: t.config.database }));
      const [a, b] = servers as [ServerProcess, ServerProcess];
      const fleet = await enrollFleet(a.url, t.adminToken, 20, ['replicas']);
      const byId = new Map(fleet.map((d) => [d.id, d]));
      db = await openDatabase(t.config.database, pino({ level: 'silent' }));
      const before = await stateVersions(db, fleet);
      const created = await new RolloutClient(a.url, t.adminToken).create({
        app: 'web',
        version: '2.0.0',
        filter: 'tags==replicas',
        waves: ['10%', '25%', '50%', '100%'],
      });
      assert.equal(created.status, 202, JSON.stringify(created.body));
      const id = created.body.id;
      const apis = [new RolloutClient(a.url, t.adminToken), new RolloutClient(b.url, t.adminToken)];
      const sizes = [2, 3, 5, 10];
      for (let wave = 0; wave < 4; wave++) {
        await apis[wave % 2]!.until(
          id,
          `wave ${wave + 1} notified`,
          (r) => r.waves[wave]!.counts.notified === sizes[wave],
        );
        const ids = await apis[(wave + 1) % 2]!.phase(id, wave, 'notified');
        // Half the devices report to each server: both engines are nudged at once.
        await Promise.all(
          ids.map((deviceId, i) =>
            install(servers[i % 2]!.url, byId.get(deviceId)!, 'web', release.targetPath),
          ),
        );
      }
      const done = await apis[1]!.until(id, 'completion', (r) => r.state === 'completed');
      assert.deepEqual(
        done.waves.map((w) => w.counts.succeeded),
        sizes,
      );
      const transitions = await db.db
        .selectFrom('audit_log')
        .select('action')
        .where('subject_id', '=', id)
        .orderBy('id')
        .execute();
      assert.deepEqual(
        transitions.map((e) => e.action),
        [
          'rollout.create',
          'rollout.wave.started',
          'rollout.wave.started',
          'rollout.wave.started',
          'rollout.completed',
        ],
      );
      const afterAll = await stateVersions(db, fleet);
      for (const d of fleet)
        assert.equal(afterAll.get(d.id)! - before.get(d.id)!, 1, `${d.id} assigned once`);
      // Both engines changed the counts in the row, each under the row lock.
      await assertCountsKept(db.db, 'postgres', id);
    } finally {
      await db?.close();
      for (const s of servers) await s.stop();
      await rm(replicaDir, { recursive: true, force: true });
      await t.close();
    }
  },
);
