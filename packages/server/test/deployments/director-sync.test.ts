/** DirectorSync: the director re-signed from committed rows, once per state version a caller needs. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DirectorSync } from '../../src/deployments/index.js';
import type { SecretVault } from '../../src/secrets/index.js';
import type { DirectorRepository } from '../../src/tuf/index.js';
import { acceptedDevice } from '../devices/fixtures.js';
import { createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';

/** A director that signs nothing and counts what it was asked (the device has no assignments). */
function countingDirector() {
  const calls = { targets: 0, assign: 0 };
  const director = {
    targets: () => {
      calls.targets++;
      return Promise.resolve(undefined);
    },
    assign: () => {
      calls.assign++;
      return Promise.resolve({ targets: 1, snapshot: 1, timestamp: 1 });
    },
  } as unknown as DirectorRepository;
  return { calls, director };
}

forEachDialect((dialect) => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ dialect });
  });
  after(() => t.close());

  void test('an assignment re-sign and a first read that race cost one sync; a newer state version syncs again', async () => {
    const device = await acceptedDevice(t);
    const { calls, director } = countingDirector();
    const sync = new DirectorSync({ ctx: t.ctx, director, vault: {} as SecretVault });
    const row = await t.ctx.db
      .selectFrom('devices')
      .select('state_version')
      .where('id', '=', device.id)
      .executeTakeFirstOrThrow();
    const version = Number(row.state_version);
    // The assignment's background re-sign and the device's read of its director, at once.
    const [first, second] = await Promise.all([sync.sync(device.id, version), sync.beforeRead(device.id)]);
    assert.equal(first, true);
    assert.equal(second, undefined);
    assert.deepEqual(calls, { targets: 1, assign: 1 });
    assert.equal(await sync.sync(device.id, version), false, 'already agreed at that version');
    assert.deepEqual(calls, { targets: 1, assign: 1 });
    // Without a version the caller needs, or at a newer one, the rows are read and compared again.
    await sync.sync(device.id);
    assert.deepEqual(calls, { targets: 2, assign: 2 });
    await t.ctx.db
      .updateTable('devices')
      .set({ state_version: version + 1 })
      .where('id', '=', device.id)
      .execute();
    await sync.beforeRead(device.id);
    assert.deepEqual(calls, { targets: 3, assign: 3 });
    await sync.beforeRead(device.id);
    assert.deepEqual(calls, { targets: 3, assign: 3 }, 'agreed at the current version: nothing to do');
  });

  void test("a sync clears the device's marker only up to the version it read; a read passes the version its token check saw", async () => {
    const device = await acceptedDevice(t);
    const { calls, director } = countingDirector();
    const sync = new DirectorSync({ ctx: t.ctx, director, vault: {} as SecretVault });
    const pendingOf = async () =>
      (
        await t.ctx.db
          .selectFrom('devices')
          .select(['state_version', 'director_pending'])
          .where('id', '=', device.id)
          .executeTakeFirstOrThrow()
      ).director_pending;
    const version = Number(
      (
        await t.ctx.db
          .selectFrom('devices')
          .select('state_version')
          .where('id', '=', device.id)
          .executeTakeFirstOrThrow()
      ).state_version,
    );
    await t.ctx.db
      .updateTable('devices')
      .set({ director_pending: version })
      .where('id', '=', device.id)
      .execute();
    await sync.sync(device.id);
    assert.equal(await pendingOf(), null, 'cleared at the version read');
    // An assignment committed at a later version than the one read keeps its marker.
    await t.ctx.db
      .updateTable('devices')
      .set({ director_pending: version + 5 })
      .where('id', '=', device.id)
      .execute();
    await sync.sync(device.id);
    assert.equal(Number(await pendingOf()), version + 5);
    // The version given by the caller counts, not a second read of the row.
    const before = calls.targets;
    await sync.beforeRead(device.id, version);
    assert.equal(calls.targets, before, 'agreed at that version already');
    await sync.beforeRead(device.id, version + 1);
    assert.equal(calls.targets, before + 1);
  });

  void test('syncs at once share their reads and marker clears; each marker cleared only up to its own version', async () => {
    const devices = await Promise.all(Array.from({ length: 12 }, () => acceptedDevice(t)));
    const ids = devices.map((d) => d.id);
    const { calls, director } = countingDirector();
    const sync = new DirectorSync({ ctx: t.ctx, director, vault: {} as SecretVault });
    // Each device marked at its own version; the last one's marker is newer than what it has.
    for (const [i, id] of ids.entries())
      await t.ctx.db
        .updateTable('devices')
        .set((eb) => ({
          state_version: eb('state_version', '+', i),
          director_pending: eb('state_version', '+', i === ids.length - 1 ? i + 5 : i),
        }))
        .where('id', '=', id)
        .execute();
    // The statements of the syncs, counted where every query of the database handle goes.
    const executor = t.ctx.db.getExecutor();
    const executeQuery = executor.executeQuery.bind(executor);
    const statements = { reads: 0, clears: 0 };
    // A clear waits until every sync has signed, so how the clears batch does not depend on
    // whether the first one ends before the second read returns (it did on a busy CI machine).
    const allSigned = async (): Promise<void> => {
      while (calls.assign < ids.length) await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    };
    executor.executeQuery = (async (query: Parameters<typeof executeQuery>[0], ...rest: unknown[]) => {
      const text = query.sql.toLowerCase();
      if (text.includes('"director_pending" <=') || text.includes('director_pending = null')) {
        statements.clears++;
        await allSigned();
      } else if (text.includes('from "devices" as "d"')) statements.reads++;
      return (executeQuery as (...a: unknown[]) => ReturnType<typeof executeQuery>)(query, ...rest);
    }) as typeof executor.executeQuery;
    try {
      assert.deepEqual(
        await Promise.all(ids.map((id) => sync.sync(id))),
        ids.map(() => true),
      );
    } finally {
      executor.executeQuery = executeQuery;
    }
    assert.equal(calls.assign, ids.length);
    // The first sync's read alone, the others' together (they came while it was in flight).
    assert.ok(statements.reads <= 2, `${statements.reads} reads`);
    // One statement per device's clear on SQLite (in process; the last one keeps its marker); on
    // PostgreSQL the first sync's clear alone and the other ten, queued while it ran, in one.
    assert.equal(statements.clears, dialect === 'postgres' ? 2 : ids.length - 1);
    const rows = await t.ctx.db
      .selectFrom('devices')
      .select(['id', 'state_version', 'director_pending'])
      .where('id', 'in', ids)
      .execute();
    for (const row of rows) {
      if (row.id === ids.at(-1)) assert.equal(Number(row.director_pending), Number(row.state_version) + 5);
      else assert.equal(row.director_pending, null, row.id);
    }
  });
});
