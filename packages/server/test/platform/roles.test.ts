import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { OperatorRoutes, Type } from '@flotilla/protocol';
import type { ServerContext } from '../../src/context.js';
import { requireRole } from '../../src/http/auth.js';
import { actorOf } from '../../src/http/route-helpers.js';
import { createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { call, errorCode } from '../helpers/http.js';

const DEPLOYER_ROUTE = '/api/v1/test/deployer-action';

/** A deployer-level route that writes, standing in for the device and rollout routes. */
function addDeployerRoute(app: FastifyInstance, ctx: ServerContext): void {
  app.post(
    DEPLOYER_ROUTE,
    { schema: { body: Type.Object({ note: Type.String() }) }, preHandler: requireRole('deployer') },
    async (request) => {
      const actor = actorOf(request);
      await ctx.audit.record({
        actorType: 'user',
        actorId: actor.userId,
        action: 'test.write',
        subjectType: 'test',
        subjectId: 'x',
      });
      return { ok: true };
    },
  );
}

forEachDialect((dialect) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp({ dialect, beforeRoutes: addDeployerRoute });
  });
  afterEach(() => t.close());

  const rowCounts = async () => ({
    users: (await t.ctx.db.selectFrom('users').select('id').execute()).length,
    writes: (await t.ctx.db.selectFrom('audit_log').select('id').where('action', '=', 'test.write').execute())
      .length,
  });

  void it('a viewer on a deployer or admin route gets 403 FLT_FORBIDDEN and nothing is written', async () => {
    const viewer = await t.tokenFor('viewer');
    const before = await rowCounts();
    const attempts = [
      call(t.app, { method: 'POST', url: DEPLOYER_ROUTE, token: viewer, body: { note: 'x' } }),
      call(t.app, {
        method: 'POST',
        url: OperatorRoutes.users,
        token: viewer,
        body: { username: 'mallory', password: 'mallory-password', role: 'admin' },
      }),
      call(t.app, { method: 'GET', url: OperatorRoutes.users, token: viewer }),
      call(t.app, { method: 'GET', url: OperatorRoutes.audit, token: viewer }),
    ];
    for (const res of await Promise.all(attempts)) {
      assert.equal(res.statusCode, 403);
      assert.equal(errorCode(res), 'FLT_FORBIDDEN');
    }
    assert.deepEqual(await rowCounts(), before);
  });

  void it('a deployer passes deployer routes but not admin routes', async () => {
    const deployer = await t.tokenFor('deployer');
    assert.equal(
      (await call(t.app, { method: 'POST', url: DEPLOYER_ROUTE, token: deployer, body: { note: 'x' } }))
        .statusCode,
      200,
    );
    assert.equal(
      errorCode(await call(t.app, { method: 'GET', url: OperatorRoutes.users, token: deployer })),
      'FLT_FORBIDDEN',
    );
    assert.equal(
      (await call(t.app, { method: 'POST', url: DEPLOYER_ROUTE, token: t.adminToken, body: { note: 'y' } }))
        .statusCode,
      200,
    );
  });

  void it('no credentials get 401 FLT_UNAUTHENTICATED on every protected route, and nothing is written', async () => {
    const before = await rowCounts();
    const attempts = [
      call(t.app, { method: 'POST', url: DEPLOYER_ROUTE, body: { note: 'x' } }),
      call(t.app, {
        method: 'POST',
        url: OperatorRoutes.users,
        body: { username: 'mallory', password: 'mallory-password', role: 'admin' },
      }),
      call(t.app, { method: 'GET', url: OperatorRoutes.me }),
      call(t.app, { method: 'GET', url: OperatorRoutes.tokens }),
      call(t.app, { method: 'POST', url: OperatorRoutes.tokens, body: { name: 'x' } }),
      call(t.app, { method: 'GET', url: OperatorRoutes.audit }),
    ];
    for (const res of await Promise.all(attempts)) {
      assert.equal(res.statusCode, 401);
      assert.equal(errorCode(res), 'FLT_UNAUTHENTICATED');
    }
    assert.deepEqual(await rowCounts(), before);
  });
});
