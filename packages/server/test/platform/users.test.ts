import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { OperatorRoutes, routePath } from '@flotilla/protocol';
import type { User, UserList } from '@flotilla/protocol';
import { createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { call, errorCode } from '../helpers/http.js';

forEachDialect((dialect) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp({ dialect });
  });
  afterEach(() => t.close());

  const userUrl = (id: string) => routePath(OperatorRoutes.user, { id });
  const adminId = async () =>
    (
      await t.ctx.db
        .selectFrom('users')
        .select('id')
        .where('username', '=', 'admin')
        .executeTakeFirstOrThrow()
    ).id;

  void it('an admin creates, reads, updates and deletes users, each audited', async () => {
    const created = await call(t.app, {
      method: 'POST',
      url: OperatorRoutes.users,
      token: t.adminToken,
      body: { username: 'carol', password: 'carol-password', role: 'viewer' },
    });
    assert.equal(created.statusCode, 201);
    const carol = created.json<User>();
    assert.deepEqual(
      { username: carol.username, role: carol.role, disabled: carol.disabled },
      { username: 'carol', role: 'viewer', disabled: false },
    );
    assert.ok(!created.body.includes('carol-password') && !created.body.includes('scrypt'));

    const login = await call(t.app, {
      method: 'POST',
      url: OperatorRoutes.login,
      body: { username: 'carol', password: 'carol-password' },
    });
    assert.equal(login.statusCode, 200);

    const patched = await call(t.app, {
      method: 'PATCH',
      url: userUrl(carol.id),
      token: t.adminToken,
      body: { role: 'deployer', password: 'carol-new-password' },
    });
    assert.equal(patched.json().role, 'deployer');
    const oldPassword = await call(t.app, {
      method: 'POST',
      url: OperatorRoutes.login,
      body: { username: 'carol', password: 'carol-password' },
    });
    assert.equal(errorCode(oldPassword), 'FLT_BAD_CREDENTIALS');

    const list = await call(t.app, { method: 'GET', url: OperatorRoutes.users, token: t.adminToken });
    assert.deepEqual(
      list.json<UserList>().items.map((u) => u.username),
      ['admin', 'carol'],
    );

    assert.equal(
      (await call(t.app, { method: 'DELETE', url: userUrl(carol.id), token: t.adminToken })).statusCode,
      204,
    );
    assert.equal(
      errorCode(await call(t.app, { method: 'GET', url: userUrl(carol.id), token: t.adminToken })),
      'FLT_NOT_FOUND',
    );

    const actions = (
      await t.ctx.db
        .selectFrom('audit_log')
        .select('action')
        .where('subject_id', '=', carol.id)
        .orderBy('id')
        .execute()
    ).map((r) => r.action);
    assert.deepEqual(actions, [
      'user.create',
      'user.login',
      'user.update',
      'user.login_failed',
      'user.delete',
    ]);
  });

  void it('a taken username is FLT_CONFLICT and creates nothing', async () => {
    const res = await call(t.app, {
      method: 'POST',
      url: OperatorRoutes.users,
      token: t.adminToken,
      body: { username: 'admin', password: 'another-password', role: 'viewer' },
    });
    assert.equal(res.statusCode, 409);
    assert.equal(errorCode(res), 'FLT_CONFLICT');
    assert.equal((await t.ctx.db.selectFrom('users').select('id').execute()).length, 1);
  });

  void it('the last active admin cannot be demoted, disabled or deleted', async () => {
    const id = await adminId();
    for (const body of [{ role: 'deployer' }, { disabled: true }]) {
      const res = await call(t.app, { method: 'PATCH', url: userUrl(id), token: t.adminToken, body });
      assert.equal(res.statusCode, 409, JSON.stringify(body));
      assert.equal(errorCode(res), 'FLT_CONFLICT');
    }
    assert.equal(
      errorCode(await call(t.app, { method: 'DELETE', url: userUrl(id), token: t.adminToken })),
      'FLT_CONFLICT',
    );
    const row = await t.ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    assert.deepEqual({ role: row.role, disabled: row.disabled }, { role: 'admin', disabled: 0 });

    // With a second admin, the first may step down; then the second is the last one.
    const second = await t.operator('admin');
    assert.equal(
      (
        await call(t.app, {
          method: 'PATCH',
          url: userUrl(id),
          token: second.token,
          body: { role: 'viewer' },
        })
      ).statusCode,
      200,
    );
    assert.equal(
      errorCode(await call(t.app, { method: 'DELETE', url: userUrl(second.user.id), token: second.token })),
      'FLT_CONFLICT',
    );
  });

  void it('a disabled admin does not count as an active admin', async () => {
    const second = await t.operator('admin');
    assert.equal(
      (
        await call(t.app, {
          method: 'PATCH',
          url: userUrl(second.user.id),
          token: t.adminToken,
          body: { disabled: true },
        })
      ).statusCode,
      200,
    );
    const res = await call(t.app, {
      method: 'PATCH',
      url: userUrl(await adminId()),
      token: t.adminToken,
      body: { role: 'viewer' },
    });
    assert.equal(errorCode(res), 'FLT_CONFLICT');
  });

  void it('an empty or unknown-field update is refused and changes nothing', async () => {
    const op = await t.operator('viewer');
    for (const body of [{}, { role: 'viewer', isAdmin: true }, { role: 'root' }, { password: 'short' }]) {
      const res = await call(t.app, { method: 'PATCH', url: userUrl(op.user.id), token: t.adminToken, body });
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(errorCode(res), 'FLT_VALIDATION');
    }
    assert.equal(
      errorCode(
        await call(t.app, {
          method: 'PATCH',
          url: userUrl('usr_missing'),
          token: t.adminToken,
          body: { role: 'viewer' },
        }),
      ),
      'FLT_NOT_FOUND',
    );
  });
});
