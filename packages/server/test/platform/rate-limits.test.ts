/**
 * Issue 13 item 4: login guessing, enrollment nonces, token challenges, inventory and report writes
 * are rate-limited per address, per (user name, address) and per device, with 429 FLT_RATE_LIMITED
 * and Retry-After; a limit one client hits never locks out another. Real HTTP against a listening
 * server, from distinct loopback source addresses (127.0.0.x).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEVICE_REPORTS_ROUTE, DeviceRoutes, OperatorRoutes } from '@flotilla/protocol';
import { signMessage, tokenChallengeMessage } from '@flotilla/node-kit';
import { TEST_ADMIN_PASSWORD, createTestApp, forEachDialect } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';
import { acceptedDevice } from '../devices/fixtures.js';

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: { error?: { code: string; details?: { limit?: string; retryAfterSeconds?: number } } } & Record<
    string,
    unknown
  >;
}

/** One real HTTP request from the loopback address `from`. */
function call(
  port: number,
  from: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        localAddress: from,
        method,
        path,
        agent: false,
        headers: {
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
            body: text === '' ? {} : (JSON.parse(text) as Answer['body']),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function assertLimited(answer: Answer, limit: string): void {
  assert.equal(answer.status, 429, JSON.stringify(answer.body));
  assert.equal(answer.body.error?.code, 'FLT_RATE_LIMITED');
  assert.equal(answer.body.error?.details?.limit, limit);
  assert.ok(answer.retryAfter !== undefined && Number(answer.retryAfter) >= 1, 'Retry-After is set');
  assert.equal(Number(answer.retryAfter), answer.body.error?.details?.retryAfterSeconds);
}

const LIMITS = {
  loginFailuresBeforeBackoff: 3,
  loginFailuresPerAddress: 6,
  enrollNoncesPerAddress: 5,
  tokenChallengesPerAddressPerMinute: 20,
  maxLiveChallengesPerDevice: 4,
  inventoryWritesPerDevicePerHour: 3,
  reportsPerDevicePerMinute: 3,
};

forEachDialect((dialect) => {
  let t: TestApp;
  let port: number;
  before(async () => {
    t = await createTestApp({ dialect, config: LIMITS });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.address();
    port = typeof address === 'object' && address ? address.port : 0;
  });
  after(() => t.close());

  const login = (from: string, username: string, password: string) =>
    call(port, from, 'POST', OperatorRoutes.login, { username, password });

  void it('login guessing backs off per (user, address); the owner elsewhere still signs in', async () => {
    const attacker = '127.0.0.11';
    for (let i = 0; i < LIMITS.loginFailuresBeforeBackoff; i++) {
      assert.equal((await login(attacker, 'admin', `guess-${i}`)).status, 401);
    }
    const locked = await login(attacker, 'admin', `guess-more`);
    assertLimited(locked, 'login_user_address');
    // Even the right password is refused from the locked address: a lock cannot be guessed through.
    assertLimited(await login(attacker, 'admin', TEST_ADMIN_PASSWORD), 'login_user_address');
    // The owner, from another address, is not locked out by the attacker.
    const owner = await login('127.0.0.12', 'admin', TEST_ADMIN_PASSWORD);
    assert.equal(owner.status, 200, JSON.stringify(owner.body));

    // The wait doubles with each further failure.
    await sleep(Number(locked.retryAfter) * 1000 + 100);
    assert.equal((await login(attacker, 'admin', 'guess-after-wait')).status, 401);
    const longer = await login(attacker, 'admin', 'guess-again');
    assertLimited(longer, 'login_user_address');
    assert.equal(Number(longer.retryAfter), 2);
  });

  void it('login guessing over many user names is capped per address', async () => {
    const attacker = '127.0.0.13';
    for (let i = 0; i < LIMITS.loginFailuresPerAddress; i++) {
      assert.equal((await login(attacker, `user-${i}`, 'wrong-password')).status, 401);
    }
    assertLimited(await login(attacker, 'someone-else', 'wrong-password'), 'login_address');
    assertLimited(await login(attacker, 'admin', TEST_ADMIN_PASSWORD), 'login_address');
    assert.equal((await login('127.0.0.14', 'admin', TEST_ADMIN_PASSWORD)).status, 200);
  });

  void it('one address cannot drain the enrollment nonce budget', async () => {
    const attacker = '127.0.0.21';
    const before = await liveNonces(t, 'enroll');
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => call(port, attacker, 'POST', DeviceRoutes.enrollNonce)),
    );
    assert.equal(answers.filter((a) => a.status === 200).length, LIMITS.enrollNoncesPerAddress);
    for (const a of answers.filter((x) => x.status !== 200)) assertLimited(a, 'enroll_nonce');
    assert.equal((await liveNonces(t, 'enroll')) - before, LIMITS.enrollNoncesPerAddress);
    // Everyone else still enrolls.
    const other = await call(port, '127.0.0.22', 'POST', DeviceRoutes.enrollNonce);
    assert.equal(other.status, 200);
  });

  void it('token challenges are capped per address, and rows per device stay bounded', async () => {
    const device = await acceptedDevice(t);
    const stranger = '127.0.0.31';
    const challenges: string[] = [];
    for (let i = 0; i < LIMITS.tokenChallengesPerAddressPerMinute; i++) {
      const a = await call(port, stranger, 'POST', DeviceRoutes.tokenChallenge, { deviceId: device.id });
      assert.equal(a.status, 200);
      challenges.push(a.body.challenge as string);
    }
    assertLimited(
      await call(port, stranger, 'POST', DeviceRoutes.tokenChallenge, { deviceId: device.id }),
      'token_challenge',
    );
    const rows = await t.ctx.db
      .selectFrom('device_nonces')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('device_id', '=', device.id)
      .executeTakeFirstOrThrow();
    assert.ok(Number(rows.n) <= LIMITS.maxLiveChallengesPerDevice, `rows: ${rows.n}`);

    // An evicted challenge is no longer good; the device itself still gets a token from its address.
    const stale = await tokenWith(port, '127.0.0.32', device, challenges[0]!);
    assert.equal(stale.body.error?.code, 'FLT_NONCE_INVALID');
    const fresh = await call(port, '127.0.0.32', 'POST', DeviceRoutes.tokenChallenge, {
      deviceId: device.id,
    });
    assert.equal(fresh.status, 200);
    const token = await tokenWith(port, '127.0.0.32', device, fresh.body.challenge as string);
    assert.equal(token.status, 200, JSON.stringify(token.body));
  });

  void it('inventory and report writes are limited per device', async () => {
    const a = await acceptedDevice(t);
    const b = await acceptedDevice(t);
    const put = (token: string) =>
      call(
        port,
        '127.0.0.41',
        'PUT',
        DeviceRoutes.inventory,
        { facts: { 'os.name': 'linux' } },
        {
          authorization: `Bearer ${token}`,
        },
      );
    for (let i = 0; i < LIMITS.inventoryWritesPerDevicePerHour; i++)
      assert.equal((await put(a.token)).status, 204);
    assertLimited(await put(a.token), 'inventory');
    assert.equal((await put(b.token)).status, 204);

    const report = (token: string) =>
      call(
        port,
        '127.0.0.41',
        'POST',
        DEVICE_REPORTS_ROUTE,
        { app: 'web', targetPath: 'web/1.0.0', phase: 'verifying' },
        {
          authorization: `Bearer ${token}`,
        },
      );
    for (let i = 0; i < LIMITS.reportsPerDevicePerMinute; i++) {
      assert.notEqual((await report(a.token)).status, 429);
    }
    assertLimited(await report(a.token), 'report');
    assert.notEqual((await report(b.token)).status, 429);
  });
});

async function liveNonces(t: TestApp, purpose: 'enroll' | 'token'): Promise<number> {
  const row = await t.ctx.db
    .selectFrom('device_nonces')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('purpose', '=', purpose)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

function tokenWith(
  port: number,
  from: string,
  device: { id: string; kp: { privateKeyPem: string } },
  challenge: string,
): Promise<Answer> {
  return call(port, from, 'POST', DeviceRoutes.token, {
    deviceId: device.id,
    challenge,
    signature: signMessage(device.kp.privateKeyPem, tokenChallengeMessage(challenge, device.id)),
  });
}
