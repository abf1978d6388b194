/**
 * Two real worker processes share a BullMQ queue on real Redis; one is SIGKILLed while it is
 * converting. Every one of the 10 images ends ready with the right bytes, published exactly once,
 * and the platform directory holds no partial file.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { ImageStore, startGateway } from '@flotilla/gateway';
import { createAuditRecorder, openDatabase } from '@flotilla/server';
import { gatewayAudit, gatewayDb } from '../../src/gateway/extension.js';
import {
  REDIS_URL,
  dropRedisPrefix,
  expectedSha256,
  sha256Of,
  silent,
  tempRoot,
  testDatabase,
  until,
  writeGatewayConfig,
} from './helpers.js';

const WORKER = fileURLToPath(new URL('./fixture-worker.js', import.meta.url));
const ADMIN = { userId: 'u-admin', username: 'admin', role: 'admin' as const, sourceIp: '127.0.0.1' };

function startWorker(id: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [WORKER], {
    env: { ...process.env, ...env, FIXTURE_WORKER_ID: id },
    // stderr piped, not inherited: a worker that outlived its test must not hold the runner's output open.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGKILL' && stderr)
      process.stderr.write(`worker ${id} (${code ?? signal}):\n${stderr}\n`);
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`worker ${id} exited early (${code})`)));
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve(child);
    });
  });
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  void test(`${dialect}: two workers on Redis share 10 imports; one killed mid-conversion; all end correct, none twice`, async (t) => {
    await twoWorkers(t, dialect);
  });
}

async function twoWorkers(t: TestContext, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const root = await tempRoot('flt-gw-workers-');
  const prefix = `flt-test-${randomBytes(4).toString('hex')}`;
  const platformDir = join(root, 'platform');
  const gate = join(root, 'open-gate');
  const configFile = await writeGatewayConfig(
    root,
    `locations:\n  fixture:\n    url: http://127.0.0.1:9\ncacheDir: ${join(root, 'cache')}\n` +
      `platforms:\n  cluster:\n    access: { type: local, imageDir: ${platformDir} }\n` +
      `attempts: 3\nbackoff: 1s\n`,
  );
  const temp = await testDatabase(dialect, root);
  const database = temp.url;
  const opened = await openDatabase(database, silent);
  const clock = { now: () => new Date() };
  const gateway = await startGateway({
    config: (await import('@flotilla/gateway')).loadGatewayConfig(configFile, root),
    db: gatewayDb(opened.db),
    audit: gatewayAudit(createAuditRecorder(opened.db, clock)),
    log: silent,
    clock,
    importer: null,
    redisUrl: REDIS_URL,
    bull: { prefix },
    workerId: 'test-server',
  });
  const workers: ChildProcess[] = [];
  t.after(async () => {
    // SIGTERM lets a worker close its queue; one still holding a gated job (a test that failed
    // before opening the gate) would wait for ever: SIGKILL after 5 s.
    await Promise.all(
      workers.map(async (w) => {
        if (w.exitCode !== null || w.signalCode !== null) return;
        const exited = new Promise((r) => w.once('exit', r));
        w.kill('SIGTERM');
        const timer = setTimeout(() => w.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    await gateway.close();
    await opened.close();
    await temp.drop();
    await dropRedisPrefix(prefix);
    await rm(root, { recursive: true, force: true });
  });
  const env = {
    FIXTURE_DATABASE: database,
    FIXTURE_DATA_DIR: root,
    FIXTURE_GATEWAY_CONFIG: configFile,
    FIXTURE_REDIS: REDIS_URL,
    FIXTURE_PREFIX: prefix,
    FIXTURE_GATE: gate,
    FIXTURE_CONCURRENCY: '1',
  };
  const a = await startWorker('worker-A', env);
  workers.push(a);
  workers.push(await startWorker('worker-B', env));

  const names = Array.from({ length: 10 }, (_, i) => ({ repository: `team/app-${i}`, tag: `1.${i}` }));
  const jobs: string[] = [];
  for (const n of names) {
    const { answer } = await gateway.service.pull(
      { image: `${n.repository}:${n.tag}`, platform: 'cluster' },
      ADMIN,
    );
    assert.ok(answer.job, 'a new image is queued');
    jobs.push(answer.job.id);
  }
  // A concurrent pull of an image being imported shares its job.
  const again = await gateway.service.pull({ image: 'team/app-0:1.0', platform: 'cluster' }, ADMIN);
  assert.equal(again.created, false);
  assert.equal(again.answer.job?.id, jobs[0]);

  const store = new ImageStore(gatewayDb(opened.db), clock);
  const db = store.db;
  const killed = await until('worker-A to be converting', async () => {
    const row = await db
      .selectFrom('gateway_jobs')
      .selectAll()
      .where('worker', '=', 'worker-A')
      .where('phase', '=', 'converting')
      .where('state', '=', 'running')
      .executeTakeFirst();
    return row;
  });
  a.kill('SIGKILL');
  await new Promise((r) => a.once('exit', r));
  await writeFile(gate, 'go');

  await until('all 10 jobs to finish', async () => {
    const rows = await db.selectFrom('gateway_jobs').select(['state']).execute();
    return rows.length === 10 && rows.every((r) => r.state === 'done' || r.state === 'failed');
  });

  const finishedKilled = await store.job(killed.id);
  assert.equal(finishedKilled?.state, 'done');
  assert.equal(finishedKilled?.worker, 'worker-B', 'the killed job was finished by the other worker');
  assert.ok((finishedKilled?.attempts ?? 0) >= 2);

  const files = (await readdir(platformDir)).sort();
  assert.equal(
    files.length,
    10,
    `exactly the 10 images on the platform, no partial file: ${files.join(', ')}`,
  );
  assert.ok(files.every((f) => /^[0-9a-f]{64}\.squashfs$/.test(f)));
  for (const n of names) {
    const row = await store.image({
      platform: 'cluster',
      image: `fixture/${n.repository}:${n.tag}`,
      arch: 'amd64',
    });
    assert.equal(row?.status, 'ready', `${n.repository} ready`);
    const expected = await expectedSha256(root, n.repository, n.tag);
    assert.equal(row?.content_id, expected, `${n.repository}: the squashfs has the expected bytes`);
    assert.equal(await sha256Of(row?.path ?? ''), expected);
  }
  const published = await sql<{ subject_id: string; n: number }>`
    select subject_id, count(*) as n from audit_log where action = 'image.ready' group by subject_id`.execute(
    opened.db,
  );
  assert.equal(published.rows.length, 10);
  assert.ok(
    published.rows.every((r) => Number(r.n) === 1),
    'each image published once',
  );
}
