import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { OperatorRoutes } from '@flotilla/protocol';
import type { AuditList } from '@flotilla/protocol';
import type { AuditEntryInput } from '../../src/context.js';
import { ManualClock } from '../helpers/clock.js';
import { createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { call, errorCode } from '../helpers/http.js';

forEachDialect((dialect) => {
  let t: TestApp;
  let clock: ManualClock;
  beforeEach(async () => {
    clock = new ManualClock();
    t = await createTestApp({ dialect, clock });
    // Start from an empty log: bootstrap and test tokens wrote some entries.
    await t.ctx.db.deleteFrom('audit_log').execute();
  });
  afterEach(() => t.close());

  const record = async (entry: Partial<AuditEntryInput> & { action: string }) => {
    await t.ctx.audit.record({
      actorType: 'user',
      actorId: 'usr_a',
      subjectType: 'device',
      subjectId: 'd1',
      ...entry,
    });
    clock.advance(1000);
  };
  const audit = async (query: string) => {
    const res = await call(t.app, {
      method: 'GET',
      url: `${OperatorRoutes.audit}${query}`,
      token: t.adminToken,
    });
    assert.equal(res.statusCode, 200, res.body);
    return res.json<AuditList>();
  };

  void it('lists newest first with actor, subject, time, source and details', async () => {
    await record({ action: 'device.accept', sourceIp: '10.0.0.9', details: { reason: 'ok' } });
    await record({ action: 'device.reject' });
    const { items, nextBefore } = await audit('');
    assert.deepEqual(
      items.map((i) => i.action),
      ['device.reject', 'device.accept'],
    );
    assert.equal(nextBefore, null);
    const accept = items[1]!;
    assert.equal(accept.at, '2030-01-01T00:00:00.000Z');
    assert.equal(accept.sourceIp, '10.0.0.9');
    assert.deepEqual(accept.details, { reason: 'ok' });
    assert.equal(typeof accept.id, 'number');
  });

  void it('filters by actor, exact action, action prefix, subject and time window', async () => {
    await record({ action: 'device.accept', actorId: 'usr_a', subjectId: 'd1' }); // 00:00:00
    await record({ action: 'device.revoke', actorId: 'usr_b', subjectId: 'd2' }); // 00:00:01
    await record({ action: 'regkey.create', actorId: 'usr_a', subjectType: 'regkey', subjectId: 'rk1' }); // 00:00:02
    await record({ action: 'devicex.other', actorId: 'usr_a' }); // 00:00:03
    const actions = async (q: string) => (await audit(q)).items.map((i) => i.action);
    assert.deepEqual(await actions('?actor=usr_b'), ['device.revoke']);
    assert.deepEqual(await actions('?action=device.accept'), ['device.accept']);
    assert.deepEqual(await actions('?action=device.*'), ['device.revoke', 'device.accept']);
    assert.deepEqual(await actions('?subjectType=regkey'), ['regkey.create']);
    assert.deepEqual(await actions('?subjectType=device&subjectId=d2'), ['device.revoke']);
    assert.deepEqual(
      await actions(
        `?since=${encodeURIComponent('2030-01-01T00:00:01Z')}&until=${encodeURIComponent('2030-01-01T00:00:03Z')}`,
      ),
      ['regkey.create', 'device.revoke'],
    );
    assert.deepEqual(await actions('?action=DEVICE.*'), [], 'actions are case-sensitive on both dialects');
    assert.deepEqual(await actions('?action=device%25'), [], 'SQL wildcards are not wildcards here');
  });

  void it('pages with limit and the before cursor without gaps or repeats', async () => {
    for (let i = 0; i < 7; i++) await record({ action: `test.step${i}` });
    const seen: string[] = [];
    let cursor = '';
    for (;;) {
      const page = await audit(`?limit=3${cursor}`);
      seen.push(...page.items.map((i) => i.action));
      if (page.nextBefore === null) break;
      cursor = `&before=${page.nextBefore}`;
    }
    assert.deepEqual(
      seen,
      [6, 5, 4, 3, 2, 1, 0].map((i) => `test.step${i}`),
    );
  });

  void it('refuses bad query parameters with FLT_VALIDATION', async () => {
    for (const q of [
      '?limit=0',
      '?limit=abc',
      '?before=-1',
      '?since=yesterday',
      '?unknown=1',
      `?limit=${10_000}`,
    ]) {
      const res = await call(t.app, {
        method: 'GET',
        url: `${OperatorRoutes.audit}${q}`,
        token: t.adminToken,
      });
      assert.equal(res.statusCode, 400, q);
      assert.equal(errorCode(res), 'FLT_VALIDATION', q);
    }
  });

  void it('records in the caller transaction: a rolled-back change leaves no entry', async () => {
    await assert.rejects(
      t.ctx.db.transaction().execute(async (trx) => {
        await t.ctx.audit.record(
          { actorType: 'system', actorId: 'x', action: 'test.rolled_back', subjectType: 't', subjectId: '1' },
          trx,
        );
        throw new Error('abort');
      }),
      /abort/,
    );
    assert.deepEqual((await audit('')).items, []);
  });
});
