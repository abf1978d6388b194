import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import pino from 'pino';
import { OperatorRoutes } from '@flotilla/protocol';
import { buildApp } from '../../src/app.js';
import { resolveServerConfig } from '../../src/config.js';
import { forEachDialect } from '../helpers/app.js';
import { createTempPostgres } from '../helpers/postgres.js';

forEachDialect((dialect) => {
  void it('the first start creates an admin with a generated password, once, never logged', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'flt-bootstrap-'));
    const pg = dialect === 'postgres' ? await createTempPostgres() : null;
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, { write: (line: string) => lines.push(line) });
    try {
      const config = resolveServerConfig({
        env: {},
        flags: { dataDir, ...(pg ? { database: pg.url } : {}) },
      });
      const first = await buildApp({ config, logger });
      const password = first.initialAdminPassword;
      assert.ok(password !== null && password.length >= 16);
      const login = await first.app.inject({
        method: 'POST',
        url: OperatorRoutes.login,
        payload: { username: 'admin', password },
      });
      assert.equal(login.statusCode, 200);
      await first.app.close();

      const second = await buildApp({ config, logger });
      assert.equal(second.initialAdminPassword, null, 'no second admin, no second password');
      assert.equal((await second.ctx.db.selectFrom('users').select('id').execute()).length, 1);
      await second.app.close();
      assert.ok(!lines.join('').includes(password), 'the password is never logged');
      assert.ok(lines.some((l) => l.includes('created the first admin account')));
    } finally {
      await pg?.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
