/**
 * With Redis, jobs of `fleet` platforms still run in the server's own process (their trees go to
 * its store and its gateway key signs them), while the other platforms' jobs wait in BullMQ for
 * `flotilla gateway worker` processes. Expiry withdraws a fleet image's release.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadGatewayConfig, startGateway } from '@flotilla/gateway';
import type { FleetHost, ImageImporter } from '@flotilla/gateway';
import { createAuditRecorder, openDatabase } from '@flotilla/server';
import { MemoryStore } from '@flotilla/store';
import { gatewayAudit, gatewayDb } from '../../src/gateway/extension.js';
import { fixtureImporter } from './fixture-importer.js';
import { REDIS_URL, silent, tempRoot, until, writeGatewayConfig } from './helpers.js';

const run = promisify(execFile);
const ADMIN = { userId: 'u1', username: 'admin', role: 'admin' as const, sourceIp: null };

void test('fleet jobs run in the server process beside a Redis queue; other platforms go to Redis', async (t) => {
  const root = await tempRoot('flt-gw-fleet-redis-');
  const redisUrl = `${REDIS_URL.replace(/\/\d*$/, '')}/${randomInt(1, 16)}`;
  const configFile = await writeGatewayConfig(
    root,
    `locations:\n  fixture:\n    url: http://127.0.0.1:9\ncacheDir: ${join(root, 'cache')}\nattempts: 1\nexpirationTimeout: 1d\n` +
      `platforms:\n  nodes:\n    access: { type: fleet, app: imgs, filter: 'tags==nodes' }\n` +
      `  shared:\n    access: { type: local, imageDir: ${join(root, 'shared')} }\n`,
  );
  const opened = await openDatabase(`sqlite:${join(root, 'db.sqlite')}`, silent);
  const published: { app: string; version: string; rootObject: string; filter: string }[] = [];
  const withdrawn: string[] = [];
  const fleet: FleetHost = {
    objects: new MemoryStore(),
    publish: (input) => {
      published.push(input);
      return Promise.resolve({
        targetPath: `${input.app}/${input.version}/${input.rootObject}`,
        deployment: 'dep_1',
        devices: 1,
      });
    },
    withdraw: (input) => {
      withdrawn.push(`${input.app}@${input.version}`);
      return Promise.resolve();
    },
  };
  const real = fixtureImporter();
  const importer: ImageImporter = {
    async import(req) {
      const result = await real.import(req);
      return { ...result, ...(req.sink && { treeRoot: 'a'.repeat(64) }) };
    },
  };
  let offsetMs = 0;
  const clock = { now: () => new Date(Date.now() + offsetMs) };
  const gateway = await startGateway({
    config: loadGatewayConfig(configFile, root),
    db: gatewayDb(opened.db),
    audit: gatewayAudit(createAuditRecorder(opened.db, clock)),
    log: silent,
    clock,
    importer,
    redisUrl,
    workerId: 'server-test',
    fleet,
  });
  t.after(async () => {
    await gateway.close();
    await opened.close();
    const { stdout } = await run('redis-cli', [
      '-u',
      redisUrl,
      '--scan',
      '--pattern',
      'bull:flotilla-gateway-imports:*',
    ]);
    const keys = stdout.split('\n').filter(Boolean);
    if (keys.length > 0) await run('redis-cli', ['-u', redisUrl, 'del', ...keys]);
    await rm(root, { recursive: true, force: true });
  });

  const fleetPull = await gateway.service.pull({ image: 'team/tool:v1', platform: 'nodes' }, ADMIN);
  const done = await until('the fleet job to finish here', async () => {
    const job = await gateway.service.job(fleetPull.answer.job?.id ?? '', ADMIN);
    return job.state === 'done' || job.state === 'failed' ? job : null;
  });
  assert.equal(done.state, 'done', done.error ?? '');
  assert.equal(published.length, 1);
  assert.match(published[0]?.version ?? '', /^v1-a{12}$/);
  const image = await gateway.service.show({ image: 'team/tool:v1', platform: 'nodes' }, ADMIN);
  assert.equal(image.path, `imgs/v1-${'a'.repeat(12)}/${'a'.repeat(64)}`);

  // No worker is running: a local platform's job waits in Redis, untouched by this process.
  const sharedPull = await gateway.service.pull({ image: 'team/tool:v1', platform: 'shared' }, ADMIN);
  const { stdout } = await run('redis-cli', [
    '-u',
    redisUrl,
    '--scan',
    '--pattern',
    'bull:flotilla-gateway-imports:*',
  ]);
  assert.ok(
    stdout.includes(sharedPull.answer.job?.id ?? '?'),
    'the local platform job is in the Redis queue',
  );
  const job = await gateway.service.job(sharedPull.answer.job?.id ?? '', ADMIN);
  assert.equal(job.state, 'queued');

  // Two days unused: the sweep withdraws the fleet image's release from its devices and the gateway role.
  offsetMs = 2 * 86_400_000;
  assert.equal(await gateway.sweep(), 1);
  assert.deepEqual(withdrawn, [`imgs@v1-${'a'.repeat(12)}`]);
});
