/**
 * Two server processes on one PostgreSQL database share events through Redis (127.0.0.1:6379): an
 * event caused through process A reaches an SSE client of process B, and the notification travels
 * on the Redis channel.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { OperatorRoutes } from '@flotilla/protocol';
import { EVENTS_CHANNEL } from '../../src/events/notifier.js';
import { bearer, createTestApp, testDialects } from '../helpers/app.js';
import { startServerProcess } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { openStream } from './sse.js';

const REDIS_URL = process.env.FLOTILLA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

void test(
  'an event caused through server A reaches an event stream client of server B (PostgreSQL + Redis)',
  { skip: !testDialects().includes('postgres') && 'PostgreSQL not among FLOTILLA_TEST_DIALECTS' },
  async () => {
    const t = await createTestApp({ dialect: 'postgres' });
    const replicaDir = await mkdtemp(join(tmpdir(), 'flt-events-replica-'));
    const servers: ServerProcess[] = [];
    const watcher = new Redis(REDIS_URL, { lazyConnect: true });
    try {
      await t.app.close();
      await cp(t.dataDir, replicaDir, { recursive: true });
      for (const dataDir of [t.dataDir, replicaDir])
        servers.push(
          await startServerProcess({
            dataDir,
            database: t.config.database,
            env: { FLOTILLA_REDIS_URL: REDIS_URL },
          }),
        );
      const [a, b] = servers as [ServerProcess, ServerProcess];
      await watcher.connect();
      const announced: number[] = [];
      watcher.on('message', (_channel: string, message: string) => announced.push(Number(message)));
      await watcher.subscribe(EVENTS_CHANNEL);

      const onB = await openStream(b.url, t.adminToken, '?type=audit.regkey.*&type=device.*');
      assert.equal(onB.status, 200);
      while (!onB.comments.some((c) => c.trim() === 'caught-up')) await new Promise((r) => setTimeout(r, 20));

      const names = ['through-a-1', 'through-a-2', 'through-a-3'];
      for (const name of names) {
        const res = await fetch(`${a.url}${OperatorRoutes.registrationKeys}`, {
          method: 'POST',
          headers: { ...bearer(t.adminToken), 'content-type': 'application/json' },
          body: JSON.stringify({ name }),
        });
        assert.equal(res.status, 201, await res.text());
      }
      const got = await onB.take(names.length);
      onB.close();
      assert.deepEqual(
        got.map((e) => e.type),
        names.map(() => 'audit.regkey.create'),
      );
      for (let i = 1; i < got.length; i++) assert.ok(got[i]!.seq > got[i - 1]!.seq);
      // Server A announced the new events on the shared channel.
      while (!announced.some((seq) => seq >= got.at(-1)!.seq)) await new Promise((r) => setTimeout(r, 20));
    } finally {
      watcher.disconnect();
      await Promise.all(servers.map((s) => s.stop()));
      await rm(replicaDir, { recursive: true, force: true });
      await t.close();
    }
  },
);
