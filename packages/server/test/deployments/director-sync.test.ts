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
});
