import assert from 'node:assert/strict';
import { it } from 'node:test';
import { OperatorRoutes } from '@flotilla/protocol';
import { createTestApp, forEachDialect } from '../helpers/app.js';

forEachDialect((dialect) => {
  for (const trustProxy of [false, true]) {
    void it(`audit source address ${trustProxy ? 'honours' : 'ignores'} X-Forwarded-For when trustProxy is ${trustProxy}`, async () => {
      const t = await createTestApp({ dialect, config: { trustProxy } });
      try {
        await t.app.inject({
          method: 'POST',
          url: OperatorRoutes.login,
          headers: { 'x-forwarded-for': '203.0.113.7' },
          remoteAddress: '::ffff:10.1.2.3',
          payload: { username: 'admin', password: 'wrong-password' },
        });
        const row = await t.ctx.db
          .selectFrom('audit_log')
          .select('source_ip')
          .where('action', '=', 'user.login_failed')
          .executeTakeFirstOrThrow();
        assert.equal(row.source_ip, trustProxy ? '203.0.113.7' : '10.1.2.3');
      } finally {
        await t.close();
      }
    });
  }
});
