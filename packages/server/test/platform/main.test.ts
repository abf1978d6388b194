import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { resolveServerConfig } from '../../src/config.js';
import { startServer } from '../../src/main.js';
import { TEST_ADMIN_PASSWORD, forEachDialect } from '../helpers/app.js';
import { createTempPostgres } from '../helpers/postgres.js';

forEachDialect((dialect) => {
  void it('startServer listens on a free port, serves, and closes idempotently', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flt-main-'));
    const pg = dialect === 'postgres' ? await createTempPostgres() : null;
    try {
      const config = resolveServerConfig({
        env: { FLOTILLA_LOG_LEVEL: 'silent' },
        flags: { dataDir: dir, listen: '127.0.0.1:0', ...(pg ? { database: pg.url } : {}) },
      });
      const server = await startServer(config);
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.notEqual(server.url, 'http://127.0.0.1:0');
      assert.ok(server.initialAdminPassword, 'a generated first-admin password is returned');
      const info = await fetch(`${server.url}/api/v1/info`);
      assert.deepEqual(((await info.json()) as { database: string }).database, dialect);
      const login = await fetch(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password: server.initialAdminPassword }),
      });
      assert.equal(login.status, 200);
      await login.arrayBuffer();
      await Promise.all([server.close(), server.close()]);
      await assert.rejects(fetch(`${server.url}/healthz`));
    } finally {
      await pg?.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  void it('a taken port fails the start with EADDRINUSE (the first server keeps serving)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flt-main-'));
    const pg = dialect === 'postgres' ? await createTempPostgres() : null;
    try {
      const flags = { dataDir: dir, listen: '127.0.0.1:0', ...(pg ? { database: pg.url } : {}) };
      const env = { FLOTILLA_LOG_LEVEL: 'silent', FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD };
      const first = await startServer(resolveServerConfig({ env, flags }));
      const port = new URL(first.url).port;
      // Another data directory: the port check fails, before anything is created there.
      const other = join(dir, 'other');
      await assert.rejects(
        startServer(
          resolveServerConfig({ env, flags: { ...flags, dataDir: other, listen: `127.0.0.1:${port}` } }),
        ),
        /EADDRINUSE/,
      );
      assert.equal(existsSync(join(other, 'flotilla.db')), false);
      // The same data directory: refused by its lock, naming this process.
      await assert.rejects(
        startServer(resolveServerConfig({ env, flags: { ...flags, listen: '127.0.0.1:0' } })),
        (e: unknown) =>
          e instanceof FlotillaError &&
          e.code === 'FLT_DATA_DIR_LOCKED' &&
          e.message.includes(`pid ${process.pid}`),
      );
      const still = await fetch(`${first.url}/healthz`);
      assert.equal(still.status, 200);
      await still.arrayBuffer();
      await first.close();
    } finally {
      await pg?.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

void it('a bad database URL fails the start with a FlotillaError, not a crash', async () => {
  const config = resolveServerConfig({
    env: { FLOTILLA_LOG_LEVEL: 'silent' },
    flags: { database: 'postgres://nobody@127.0.0.1:1/none', listen: '127.0.0.1:0' },
  });
  await assert.rejects(
    startServer(config),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_UNAVAILABLE',
  );
});
