/**
 * `local` delivery and `remote` delivery to a real sshd both land the file atomically (a watcher
 * never sees a partial file under the final name); a pinned host key that does not match refuses
 * the copy; expiry removes unused images from both platforms and the cache, and keeps one that was
 * looked up recently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalDelivery, RemoteDelivery, loadGatewayConfig, startGateway } from '@flotilla/gateway';
import type { Delivery } from '@flotilla/gateway';
import { createAuditRecorder, openDatabase } from '@flotilla/server';
import { gatewayAudit, gatewayDb } from '../../src/gateway/extension.js';
import { fixtureImporter } from './fixture-importer.js';
import { sha256Of, silent, tempRoot, until, writeGatewayConfig } from './helpers.js';
import { startSshd } from './sshd.js';

const SIZE = 48 * 1024 * 1024;

/** Delivers while watching the final name: every time it exists it must be whole. */
async function deliverWatched(
  delivery: Delivery,
  file: string,
  finalPath: string,
): Promise<{ seenPartial: number[]; path: string }> {
  const seenPartial: number[] = [];
  let done = false;
  const watcher = (async () => {
    while (!done) {
      const s = await stat(finalPath).catch(() => null);
      if (s !== null && s.size !== SIZE) seenPartial.push(s.size);
      await new Promise((r) => setImmediate(r));
    }
  })();
  try {
    return { seenPartial, path: await delivery.deliver(file, 'image.squashfs') };
  } finally {
    done = true;
    await watcher;
  }
}

void test('local and remote (SFTP to a real sshd) delivery land the file atomically', async (t) => {
  const root = await tempRoot('flt-gw-delivery-');
  const sshd = await startSshd(join(root, 'sshd'));
  t.after(async () => {
    await sshd.stop();
    await rm(root, { recursive: true, force: true });
  });
  const source = join(root, 'source.squashfs');
  await writeFile(source, randomBytes(SIZE));
  const expected = await sha256Of(source);

  const localDir = join(root, 'local');
  const local = await deliverWatched(new LocalDelivery(localDir), source, join(localDir, 'image.squashfs'));
  assert.deepEqual(local.seenPartial, [], 'no partial local file under the final name');
  assert.equal(await sha256Of(local.path), expected);
  assert.deepEqual(await readdir(localDir), ['image.squashfs'], 'no temporary file left');

  const remoteDir = join(root, 'remote');
  const remote = new RemoteDelivery({
    type: 'remote',
    host: '127.0.0.1',
    port: sshd.port,
    username: sshd.username,
    privateKeyFile: sshd.clientKeyFile,
    imageDir: remoteDir,
    hostKeySha256: sshd.hostKeySha256,
  });
  const delivered = await deliverWatched(remote, source, join(remoteDir, 'image.squashfs'));
  assert.deepEqual(delivered.seenPartial, [], 'no partial remote file under the final name');
  assert.equal(delivered.path, join(remoteDir, 'image.squashfs'));
  assert.equal(await sha256Of(delivered.path), expected);
  assert.deepEqual(await readdir(remoteDir), ['image.squashfs']);
  await remote.remove(delivered.path);
  assert.equal(existsSync(delivered.path), false);

  const impostor = new RemoteDelivery({
    type: 'remote',
    host: '127.0.0.1',
    port: sshd.port,
    username: sshd.username,
    privateKeyFile: sshd.clientKeyFile,
    imageDir: join(root, 'never'),
    hostKeySha256: `SHA256:${Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')}`,
  });
  await assert.rejects(impostor.deliver(source, 'image.squashfs'));
  assert.equal(existsSync(join(root, 'never')), false, 'nothing written to a host whose key does not match');
});

void test('expiry removes unused images from local and remote platforms and the cache; a looked-up one stays', async (t) => {
  const root = await tempRoot('flt-gw-expiry-');
  const sshd = await startSshd(join(root, 'sshd'));
  const localDir = join(root, 'local');
  const remoteDir = join(root, 'remote');
  await mkdir(localDir, { recursive: true });
  const configFile = await writeGatewayConfig(
    root,
    `locations:\n  fixture:\n    url: http://127.0.0.1:9\ncacheDir: ${join(root, 'cache')}\nexpirationTimeout: 1h\n` +
      `defaultPlatform: local\nplatforms:\n  local:\n    access: { type: local, imageDir: ${localDir} }\n` +
      `  remote:\n    access:\n      type: remote\n      host: 127.0.0.1\n      port: ${sshd.port}\n      username: ${sshd.username}\n` +
      `      privateKeyFile: ${sshd.clientKeyFile}\n      imageDir: ${remoteDir}\n      hostKeySha256: "${sshd.hostKeySha256}"\n`,
  );
  const opened = await openDatabase(`sqlite:${join(root, 'flotilla.db')}`, silent);
  let now = Date.parse('2026-12-01T00:00:00Z');
  const clock = { now: () => new Date(now) };
  const gateway = await startGateway({
    config: loadGatewayConfig(configFile, root),
    db: gatewayDb(opened.db),
    audit: gatewayAudit(createAuditRecorder(opened.db, clock)),
    log: silent,
    clock,
    importer: fixtureImporter(),
    workerId: 'test',
  });
  t.after(async () => {
    await gateway.close();
    await opened.close();
    await sshd.stop();
    await rm(root, { recursive: true, force: true });
  });
  const admin = { userId: 'u1', username: 'admin', role: 'admin' as const, sourceIp: null };
  const svc = gateway.service;
  const pulls = [
    { image: 'tools/old:1', platform: 'local' },
    { image: 'tools/old:1', platform: 'remote' },
    { image: 'tools/used:2', platform: 'local' },
    { image: 'tools/used:2', platform: 'remote' },
  ];
  for (const p of pulls) await svc.pull(p, admin);
  const ready = await until('all four images ready', async () => {
    const items = await svc.list(undefined, admin);
    return items.length === 4 && items.every((i) => i.status === 'ready') ? items : null;
  });
  for (const i of ready) assert.ok(existsSync(i.path ?? ''), `${i.image} on ${i.platform} delivered`);
  const old = ready.filter((i) => i.image.endsWith('old:1'));
  assert.equal(
    old[0]?.expiresAt,
    new Date(now + 3600_000).toISOString(),
    'images ls shows when each expires',
  );

  now += 40 * 60_000;
  await svc.lookup({ image: 'tools/used:2', platform: 'local' }, admin);
  await svc.lookup({ image: 'tools/used:2', platform: 'remote' }, admin);
  now += 40 * 60_000;
  assert.equal(await gateway.sweep(), 2, 'the two unused images expire');

  const left = await svc.list(undefined, admin);
  assert.deepEqual(left.map((i) => `${i.platform} ${i.image}`).sort(), [
    'local fixture/tools/used:2',
    'remote fixture/tools/used:2',
  ]);
  for (const i of old) {
    assert.equal(existsSync(i.path ?? ''), false, `${i.image} removed from ${i.platform}`);
    assert.equal(
      existsSync(join(root, 'cache', 'images', `${i.id ?? ''}.squashfs`)),
      false,
      'and from the cache',
    );
  }
  for (const i of left) assert.ok(existsSync(i.path ?? ''), `${i.image} kept on ${i.platform}`);
  await assert.rejects(svc.lookup({ image: 'tools/old:1', platform: 'local' }, admin), {
    code: 'FLT_IMAGE_NOT_FOUND',
  });
});
