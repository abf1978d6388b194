/**
 * In-process jobs (no Redis): an import that outlives the pull timeout fails with
 * FLT_IMAGE_PULL_TIMEOUT after its retries, leaving the image failed and nothing published; a
 * later pull of a failed image starts a new job; a bad configuration lists every problem.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadGatewayConfig, startGateway } from '@flotilla/gateway';
import type { ImageImporter } from '@flotilla/gateway';
import { createAuditRecorder, openDatabase } from '@flotilla/server';
import { gatewayAudit, gatewayDb } from '../../src/gateway/extension.js';
import { fixtureImporter } from './fixture-importer.js';
import { silent, tempRoot, until, writeGatewayConfig } from './helpers.js';

const ADMIN = { userId: 'u1', username: 'admin', role: 'admin' as const, sourceIp: null };

void test('an import past the pull timeout fails after its retries; nothing is published; a new pull retries', async (t) => {
  const root = await tempRoot('flt-gw-jobs-');
  const platformDir = join(root, 'platform');
  const configFile = await writeGatewayConfig(
    root,
    `locations:\n  fixture:\n    url: http://127.0.0.1:9\ncacheDir: ${join(root, 'cache')}\npullTimeout: 5s\nattempts: 2\nbackoff: 50ms\n` +
      `platforms:\n  p:\n    access: { type: local, imageDir: ${platformDir} }\n`,
  );
  const opened = await openDatabase(`sqlite:${join(root, 'db.sqlite')}`, silent);
  let calls = 0;
  let hang = true;
  const real = fixtureImporter();
  const importer: ImageImporter = {
    async import(req) {
      calls++;
      if (!hang) return real.import(req);
      // Stands for a registry that stops sending: only the pull timeout ends it.
      await new Promise((_resolve, reject) =>
        req.signal.addEventListener('abort', () => reject(req.signal.reason as Error)),
      );
      throw new Error('unreachable');
    },
  };
  const clock = { now: () => new Date() };
  const gateway = await startGateway({
    config: loadGatewayConfig(configFile, root),
    db: gatewayDb(opened.db),
    audit: gatewayAudit(createAuditRecorder(opened.db, clock)),
    log: silent,
    clock,
    importer,
    workerId: 'test',
  });
  t.after(async () => {
    await gateway.close();
    await opened.close();
    await rm(root, { recursive: true, force: true });
  });
  const { answer } = await gateway.service.pull({ image: 'slow/app:1' }, ADMIN);
  const jobId = answer.job?.id ?? '';
  const failed = await until('the job to fail', async () => {
    const job = await gateway.service.job(jobId, ADMIN);
    return job.state === 'failed' ? job : null;
  });
  assert.equal(failed.attempts, 2, 'retried once');
  assert.match(failed.error ?? '', /pull timeout/);
  assert.equal(calls, 2);
  const image = await gateway.service.show({ image: 'slow/app:1' }, ADMIN);
  assert.equal(image.status, 'failed');
  assert.deepEqual(await readdir(platformDir).catch(() => []), [], 'nothing published');

  hang = false;
  const retry = await gateway.service.pull({ image: 'slow/app:1' }, ADMIN);
  assert.equal(retry.created, true, 'a failed image gets a new job');
  assert.notEqual(retry.answer.job?.id, jobId);
  const done = await until('the new job to finish', async () => {
    const job = await gateway.service.job(retry.answer.job?.id ?? '', ADMIN);
    return job.state === 'done' || job.state === 'failed' ? job : null;
  });
  assert.equal(done.state, 'done', done.error ?? '');
  assert.equal((await gateway.service.show({ image: 'slow/app:1' }, ADMIN)).status, 'ready');
});

void test('a bad gateway configuration lists every problem with FLT_GATEWAY_CONFIG_INVALID', async (t) => {
  const root = await tempRoot('flt-gw-config-');
  t.after(() => rm(root, { recursive: true, force: true }));
  const file = await writeGatewayConfig(
    root,
    'pullTimeout: soon\nlocations:\n  hub:\n    url: ftp://x\nplatforms:\n  a:\n    access: { type: tape }\nbogus: 1\n',
  );
  assert.throws(
    () => loadGatewayConfig(file, root),
    (e: Error & { code?: string; details?: { problems: string[] } }) => {
      assert.equal(e.code, 'FLT_GATEWAY_CONFIG_INVALID');
      const problems = e.details?.problems.join('\n') ?? '';
      for (const p of ['bogus: unknown key', 'locations.hub.url', 'platforms.a.access.type', 'pullTimeout'])
        assert.match(problems, new RegExp(p.replace('.', '\\.')));
      return true;
    },
  );
});
