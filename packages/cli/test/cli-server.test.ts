import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  AuditList,
  CreateRegistrationKeyResponse,
  Device,
  DeviceList,
  RegistrationKeyList,
  User,
} from '@flotilla/protocol';
import { runCli } from '../src/program.js';
import { json, memoryIo } from './helpers/memory-io.js';
import { enrollDevice } from '@flotilla/testkit';
import { ADMIN_PASSWORD, startTestServer } from './helpers/server.js';
import type { TestServer } from './helpers/server.js';

void describe('flotilla against a real server', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(() => srv.close());

  const login = () =>
    srv.run(['--server', srv.url, 'login', '--user', 'admin', '--password-stdin'], {
      stdin: `${ADMIN_PASSWORD}\n`,
    });

  void test('a wrong password fails with its code and stores nothing', async () => {
    const res = await srv.run(['--server', srv.url, 'login', '--user', 'admin', '--password-stdin'], {
      stdin: 'wrong-password',
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^error \[FLT_BAD_CREDENTIALS\]: /);
    await assert.rejects(stat(join(srv.configDir, 'credentials.json')), { code: 'ENOENT' });
  });

  void test('login stores a token (never the password) in a 0600 file; whoami uses it', async () => {
    const res = await login();
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /logged in to .* as admin \(admin\)/);
    const path = join(srv.configDir, 'credentials.json');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(srv.configDir)).mode & 0o777, 0o700);
    const text = await readFile(path, 'utf8');
    assert.ok(!text.includes(ADMIN_PASSWORD), 'the password is never stored');
    const stored = JSON.parse(text) as { server: string; token: string; username: string };
    assert.equal(stored.server, srv.url);
    assert.equal(stored.username, 'admin');
    assert.match(stored.token, /^flt_at_/);

    const who = json<{ user: User; via: string }>(await srv.run(['whoami', '--json']));
    assert.equal(who.user.username, 'admin');
    assert.equal(who.via, 'token');
    // The login session was only used to mint the token: exactly one token named after this host.
    const tokens = json<{ items: { name: string }[] }>(await srv.run(['tokens', 'ls', '--json']));
    assert.deepEqual(
      tokens.items.map((t) => t.name),
      ['cli@test-host'],
    );
  });

  void test('regkeys create prints the secret once with a warning; ls never shows it; revoke', async () => {
    const created = await srv.run([
      'regkeys',
      'create',
      '--name',
      'lab',
      '--tags',
      'lab,arm64',
      '--max-uses',
      '5',
      '--expires',
      '7d',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const secret = /^(flt_rk_\S+)$/m.exec(created.stdout)?.[1];
    assert.ok(secret, created.stdout);
    assert.match(created.stderr, /cannot be shown again/);

    const asJson = json<CreateRegistrationKeyResponse>(
      await srv.run(['regkeys', 'create', '--name', 'ci', '--auto-accept', '--json']),
    );
    assert.match(asJson.secret, /^flt_rk_/);
    assert.equal(asJson.key.autoAccept, true);

    const table = await srv.run(['regkeys', 'ls']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^ID\s+NAME\s+STATE/);
    assert.match(table.stdout, /lab\s+active\s+arm64,lab\s+0\/5/);
    assert.ok(!table.stdout.includes(secret) && !table.stdout.includes(asJson.secret));

    const list = json<RegistrationKeyList>(await srv.run(['regkeys', 'ls', '--json']));
    assert.equal(list.items.length, 2);
    assert.ok(!JSON.stringify(list).includes('flt_rk_'));

    const revoked = await srv.run(['regkeys', 'revoke', asJson.key.id]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const after = json<RegistrationKeyList>(await srv.run(['regkeys', 'ls', '--json']));
    assert.equal(after.items.find((k) => k.id === asJson.key.id)?.state, 'revoked');

    const missing = await srv.run(['regkeys', 'revoke', 'no_such_key']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error \[FLT_[A-Z_]+\]: /);
  });

  void test('devices: ls as JSON and table, show with facts, accept, tag, reject; bad filters are errors', async () => {
    const key = json<CreateRegistrationKeyResponse>(
      await srv.run(['regkeys', 'create', '--name', 'devs', '--tags', 'fleet', '--json']),
    );
    const id = (
      await enrollDevice(srv.url, key.secret, {
        facts: { hostname: 'edge-01', os: 'linux', arch: 'arm64', cpus: 4 },
      })
    ).deviceId;
    const other = (await enrollDevice(srv.url, key.secret, { facts: { hostname: 'edge-02' } })).deviceId;

    const page = json<DeviceList>(await srv.run(['devices', 'ls', '--json']));
    assert.equal(page.total, 2);
    assert.deepEqual(page.items.map((d) => d.id).sort(), [id, other].sort());

    const table = await srv.run(['devices', 'ls', '--filter', 'status==pending', '--sort', 'id']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID\s+STATUS\s+HOSTNAME\s+ONLINE\s+TAGS\s+OS\/ARCH\s+LAST SEEN/);
    assert.match(
      table.stdout,
      new RegExp(`${id.slice(0, 12)}\\s+pending\\s+edge-01\\s+(yes|no)\\s+fleet\\s+linux/arm64`),
    );
    assert.ok(!table.stdout.includes(id), 'ids are shortened in the table');

    const paged = await srv.run(['devices', 'ls', '--limit', '1']);
    assert.match(paged.stderr, /showing 1-1 of 2; next page: --offset 1/);

    const show = await srv.run(['devices', 'show', id.slice(0, 12)]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`id\\s+${id}`));
    assert.match(show.stdout, /cpus\s+4/);

    const accepted = json<Device>(
      await srv.run(['devices', 'accept', id, '--reason', 'ticket 42', '--json']),
    );
    assert.equal(accepted.status, 'accepted');
    const tagged = json<Device>(
      await srv.run(['devices', 'tag', id, '--add', 'canary,eu', '--remove', 'fleet', '--json']),
    );
    assert.deepEqual([...tagged.tags].sort(), ['canary', 'eu']);
    const set = json<Device>(await srv.run(['devices', 'tag', id, '--set', 'prod', '--json']));
    assert.deepEqual(set.tags, ['prod']);
    const rejected = await srv.run(['devices', 'reject', other]);
    assert.equal(rejected.code, 0, rejected.stderr);
    assert.match(rejected.stdout, /rejected device/);

    const bad = await srv.run(['devices', 'ls', '--filter', 'role==(']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error \[FLT_FILTER_INVALID\]: /);
    const unknown = await srv.run(['devices', 'show', 'ffffffffffffffffffffffffffffffff']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^error \[FLT_(DEVICE_)?NOT_FOUND\]: /);
    const noPrefix = await srv.run(['devices', 'show', 'ffffffff']);
    assert.equal(noPrefix.code, 1);
    assert.match(noPrefix.stderr, /^error \[FLT_DEVICE_NOT_FOUND\]: no device id starts with ffffffff/);

    const audit = json<AuditList>(
      await srv.run(['audit', 'ls', '--action', 'device.*', '--subject-id', id, '--json']),
    );
    assert.ok(
      audit.items.some((e) => e.action === 'device.accept'),
      JSON.stringify(audit.items.map((e) => e.action)),
    );
  });

  void test('flotilla agent enrolls with its key file, logs to --log-file, and stops on SIGTERM', async (t) => {
    const key = json<CreateRegistrationKeyResponse>(
      await srv.run([
        'regkeys',
        'create',
        '--name',
        'agent-test',
        '--tags',
        'cli-agent',
        '--auto-accept',
        '--json',
      ]),
    );
    const dir = await mkdtemp(join(tmpdir(), 'flt-cli-agent-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'registration.key');
    await writeFile(keyFile, `${key.secret}\n`, { mode: 0o600 });
    const logFile = join(dir, 'logs', 'agent.log');
    const io = memoryIo({ env: {} });
    const argv = [
      '--server',
      srv.url,
      'agent',
      '--data-dir',
      join(dir, 'agent'),
      '--registration-key-file',
      keyFile,
    ];
    const running = runCli([...argv, '--log-file', logFile, '--log-format', 'json'], io);

    let device: Device | undefined;
    for (let attempt = 0; attempt < 300 && !device; attempt++) {
      const page = json<DeviceList>(
        await srv.run(['devices', 'ls', '--filter', 'tags==cli-agent', '--json']),
      );
      device = page.items.find((d) => d.status === 'accepted');
      if (!device) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(device, `the agent never enrolled:\n${io.stderr.text}`);
    io.signals.emit('SIGTERM');
    assert.equal(await running, 0, io.stderr.text);
    assert.equal(io.stdout.text, '', 'logs went to the file, not stdout');
    const lines = (await readFile(logFile, 'utf8')).trim().split('\n');
    const messages = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    assert.ok(
      messages.some((m) => /stopping: SIGTERM/.test(m)),
      messages.join('\n'),
    );
    assert.ok(!lines.some((l) => l.includes(key.secret)), 'the registration key never reaches the log');
  });

  void test('users and tokens', async () => {
    const created = await srv.run(
      ['users', 'create', '--username', 'alice', '--role', 'viewer', '--password-stdin'],
      {
        stdin: 'alice-password-123\n',
      },
    );
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /alice\s+viewer/);
    const promoted = json<User>(await srv.run(['users', 'set-role', 'alice', 'deployer', '--json']));
    assert.equal(promoted.role, 'deployer');
    const disabled = json<User>(await srv.run(['users', 'disable', 'alice', '--json']));
    assert.equal(disabled.disabled, true);
    const users = await srv.run(['users', 'ls']);
    assert.match(users.stdout, /alice\s+deployer\s+yes/);
    const nobody = await srv.run(['users', 'set-role', 'nobody', 'viewer']);
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /^error \[FLT_NOT_FOUND\]: no user with id or username "nobody"/);
    const short = await srv.run(
      ['users', 'create', '--username', 'bob', '--role', 'viewer', '--password-stdin'],
      { stdin: 'short' },
    );
    assert.equal(short.code, 1);
    assert.match(short.stderr, /^error \[FLT_VALIDATION\]/);

    const token = json<{ token: { id: string }; secret: string }>(
      await srv.run(['tokens', 'create', '--name', 'ci', '--expires', '30d', '--json']),
    );
    const viaToken = await srv.run(['--server', srv.url, 'whoami', '--json'], {
      env: { FLOTILLA_TOKEN: token.secret, FLOTILLA_CONFIG_DIR: join(srv.configDir, 'none') },
    });
    assert.equal(viaToken.code, 0, viaToken.stderr);
    assert.equal((await srv.run(['tokens', 'revoke', token.token.id])).code, 0);
    const revoked = await srv.run(['--server', srv.url, 'whoami'], {
      env: { FLOTILLA_TOKEN: token.secret, FLOTILLA_CONFIG_DIR: join(srv.configDir, 'none') },
    });
    assert.equal(revoked.code, 1);
    assert.match(revoked.stderr, /^error \[FLT_TOKEN_INVALID|FLT_UNAUTHENTICATED\]/);
  });

  void test('logout revokes the token on the server and deletes the credentials', async () => {
    const token = JSON.parse(await readFile(join(srv.configDir, 'credentials.json'), 'utf8')) as {
      token: string;
    };
    const res = await srv.run(['logout']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /logged out of .* \(token revoked\)/);
    await assert.rejects(stat(join(srv.configDir, 'credentials.json')), { code: 'ENOENT' });
    const stale = await srv.run(['--server', srv.url, 'whoami'], { env: { FLOTILLA_TOKEN: token.token } });
    assert.equal(stale.code, 1);
    const again = await srv.run(['logout']);
    assert.equal(again.code, 0);
    assert.match(again.stderr, /not logged in/);
  });
});
