/**
 * A full disk (issue 13 item 8), on a real full file system: the server's data directory on a
 * 2 MiB tmpfs (mounting needs root; without it the test is skipped, saying why). While it is full,
 * login, registration keys, enrollment and a push answer 507 FLT_DISK_FULL without any server path,
 * and /readyz answers 503; once space is freed, all of it works again without a restart.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import pg from 'pg';
import {
  DeviceRoutes,
  ObjectRoutes,
  OperatorRoutes,
  PACK_CODEC_HEADER,
  PACK_CONTENT_TYPE,
} from '@flotilla/protocol';
import { enrollmentMessage, generateEd25519, signMessage } from '@flotilla/node-kit';
import { resolveServerConfig } from '../../src/config.js';
import { startServer } from '../../src/main.js';
import type { RunningServer } from '../../src/main.js';
import { toFlotillaError } from '../../src/http/errors.js';
import { TEST_ADMIN_PASSWORD } from '../helpers/app.js';
import { encodePack, noise, recordsOf, treeOf } from '../objects/push.js';

let mountPoint: string;
let mounted = false;
let skipReason: string | false = false;
let server: RunningServer | undefined;
let token = '';
let regkey = '';
const filler = () => join(mountPoint, 'filler');

before(async () => {
  mountPoint = await mkdtemp(join(tmpdir(), 'flt-diskfull-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mountPoint], { stdio: 'pipe' });
    mounted = true;
  } catch (e) {
    skipReason = `cannot mount a tmpfs here (needs root): ${(e as Error).message.split('\n')[0]}`;
    return;
  }
  server = await startServer(
    resolveServerConfig({
      env: {
        FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
        FLOTILLA_LOG_LEVEL: 'silent',
        FLOTILLA_MIN_FREE_DISK_BYTES: String(64 * 1024),
      },
      flags: { dataDir: join(mountPoint, 'data'), listen: '127.0.0.1:0' },
    }),
  );
  token = (
    (await (await call('POST', OperatorRoutes.tokens, { name: 't' }, await adminCookie())).json()) as {
      secret: string;
    }
  ).secret;
  const key = await call('POST', OperatorRoutes.registrationKeys, { name: 'fleet', autoAccept: true });
  assert.equal(key.status, 201);
  regkey = ((await key.json()) as { secret: string }).secret;
});

after(async () => {
  await server?.close();
  if (mounted) execFileSync('umount', [mountPoint]);
  await rmdir(mountPoint).catch(() => rm(mountPoint, { recursive: true, force: true }));
});

async function adminCookie(): Promise<string> {
  const res = await call('POST', OperatorRoutes.login, { username: 'admin', password: TEST_ADMIN_PASSWORD });
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  return (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
}

function call(method: string, path: string, body?: unknown, cookie?: string): Promise<Response> {
  assert.ok(server);
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (cookie) {
    headers.cookie = cookie;
    headers.origin = server.url;
  } else if (token) headers.authorization = `Bearer ${token}`;
  return fetch(`${server.url}${path}`, {
    method,
    headers,
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

/** Writes zeros to the filler file until the file system refuses (ENOSPC). */
async function fillDisk(): Promise<void> {
  const handle = await open(filler(), 'a');
  const block = Buffer.alloc(16 * 1024);
  try {
    for (;;) await handle.write(block);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    await handle.close();
  }
}

async function diskFull(res: Response, what: string): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 507, `${what}: ${text}`);
  const body = JSON.parse(text) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'FLT_DISK_FULL', what);
  assert.ok(!text.includes(mountPoint), `${what} shows a server path: ${text}`);
  assert.doesNotMatch(text, /cannot rollback/, what);
}

async function enroll(): Promise<Response> {
  const { privateKeyPem, publicKey } = generateEd25519();
  const nonceRes = await fetch(`${server!.url}${DeviceRoutes.enrollNonce}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  if (nonceRes.status !== 200) return nonceRes;
  const { nonce } = (await nonceRes.json()) as { nonce: string };
  const signature = signMessage(privateKeyPem, enrollmentMessage(nonce, publicKey, regkey));
  return fetch(`${server!.url}${DeviceRoutes.enroll}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ registrationKey: regkey, publicKey, nonce, signature }),
  });
}

async function push(): Promise<Response> {
  const tree = await treeOf({ 'big.bin': noise(256 * 1024), 'small.txt': 'x' });
  return fetch(`${server!.url}${ObjectRoutes.upload}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': PACK_CONTENT_TYPE,
      [PACK_CODEC_HEADER]: 'identity',
    },
    body: await encodePack(await recordsOf(tree.store, tree.store.ids())),
  });
}

void it('a full disk answers 507 FLT_DISK_FULL without server paths, /readyz 503; freeing space recovers', async (t) => {
  if (skipReason) {
    t.skip(skipReason);
    return;
  }
  const ready = await call('GET', '/readyz');
  assert.equal(ready.status, 200, await ready.text());
  await fillDisk();

  const notReady = await call('GET', '/readyz');
  const notReadyText = await notReady.text();
  assert.equal(notReady.status, 503, notReadyText);
  assert.ok(!notReadyText.includes(mountPoint), notReadyText);

  await diskFull(
    await call('POST', OperatorRoutes.login, { username: 'admin', password: TEST_ADMIN_PASSWORD }),
    'login',
  );
  await diskFull(await call('POST', OperatorRoutes.registrationKeys, { name: 'more' }), 'registration key');
  await diskFull(await enroll(), 'enrollment');
  await diskFull(await push(), 'push');

  // Space freed: everything works again, same process.
  await rm(filler());
  const readyAgain = await call('GET', '/readyz');
  assert.equal(readyAgain.status, 200, await readyAgain.text());
  await adminCookie();
  const key = await call('POST', OperatorRoutes.registrationKeys, { name: 'after' });
  assert.equal(key.status, 201, await key.clone().text());
  await key.arrayBuffer();
  const enrolled = await enroll();
  assert.equal(enrolled.status, 201, await enrolled.clone().text());
  await enrolled.arrayBuffer();
  const pushed = await push();
  assert.equal(pushed.status, 200, await pushed.clone().text());
  await pushed.arrayBuffer();
});

void it('PostgreSQL disk_full (SQLSTATE 53100) maps to 507 FLT_DISK_FULL, wrapped or not', () => {
  const pgError = new pg.DatabaseError(
    'could not extend file "base/16384/2619": No space left on device',
    0,
    'error',
  );
  pgError.code = '53100';
  for (const error of [pgError, new Error('insert failed', { cause: pgError })]) {
    const flt = toFlotillaError(error);
    assert.equal(flt.code, 'FLT_DISK_FULL');
    assert.equal(flt.statusCode, 507);
    assert.doesNotMatch(flt.message, /base\/16384/);
  }
  const other = new pg.DatabaseError('duplicate key', 0, 'error');
  other.code = '23505';
  assert.equal(toFlotillaError(other).code, 'FLT_INTERNAL');
});
