import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { writeCredentials } from '../src/config/credentials.js';
import { buildProgram } from '../src/program.js';
import { cli, memoryIo } from './helpers/memory-io.js';
import { scriptedServer, sendJson } from '@flotilla/testkit';

function leafCommands(command: Command, path: string[] = []): { path: string[]; command: Command }[] {
  const subs = command.commands.filter((c) => c.name() !== 'help');
  if (subs.length === 0) return [{ path, command }];
  return [{ path, command }, ...subs.flatMap((c) => leafCommands(c, [...path, c.name()]))];
}

void test('--help of every command lists each of its options and shows examples', async () => {
  const commands = leafCommands(buildProgram(memoryIo())).filter((c) => c.path.length > 0);
  assert.ok(commands.length >= 25, `found ${commands.length} commands`);
  for (const { path, command } of commands) {
    const res = await cli([...path, '--help']);
    assert.equal(res.code, 0, path.join(' '));
    for (const option of command.options.filter((o) => !o.hidden)) {
      assert.ok(res.stdout.includes(option.flags), `${path.join(' ')} --help lacks ${option.flags}`);
    }
    for (const global of ['--server <url>', '--json', '--config-dir <dir>']) {
      assert.ok(res.stdout.includes(global), `${path.join(' ')} --help lacks global ${global}`);
    }
    if (command.commands.length === 0) {
      assert.match(res.stdout, /Examples:\n {2}\$ .*flotilla /, `${path.join(' ')} has no examples`);
    }
  }
});

void test('--version prints the version and exits 0', async () => {
  const res = await cli(['--version']);
  assert.equal(res.code, 0);
  assert.match(res.stdout, /^\d+\.\d+\.\d+\n$/);
});

void test('usage errors exit 2 before anything is sent', async () => {
  const cases: string[][] = [
    ['bogus'],
    ['devices', 'ls', '--bogus'],
    ['devices', 'ls', '--limit', 'abc'],
    ['devices', 'ls', '--limit', '0'],
    ['devices', 'ls', '--limit', '1001'],
    ['devices', 'ls', '--offset', '-1'],
    ['devices', 'show'],
    ['devices', 'tag', 'abc'],
    ['devices', 'tag', 'abc', '--set', 'a', '--add', 'b'],
    ['devices', 'tag', 'abc', '--add', 'bad tag'],
    ['regkeys'],
    ['regkeys', 'create'],
    ['regkeys', 'create', '--name', 'x', '--expires', '7'],
    ['regkeys', 'create', '--name', 'x', '--max-uses', '-3'],
    ['regkeys', 'create', '--name', 'x', '--tags', 'a;b'],
    ['users', 'create', '--username', 'u', '--role', 'root'],
    ['users', 'create', '--username', 'u', '--role', 'viewer'],
    ['users', 'set-role', 'alice', 'god'],
    ['tokens', 'create', '--name', 't', '--expires', 'soon'],
    ['audit', 'ls', '--since', 'yesterday'],
    ['audit', 'ls', '--before', '0'],
    ['login', '--user', 'admin'],
    ['--server', 'ftp://h', 'whoami'],
  ];
  for (const argv of cases) {
    const res = await cli(argv);
    assert.equal(res.code, 2, `${argv.join(' ')} → ${res.code}: ${res.stderr}`);
    assert.match(res.stderr, /error: |Usage: /, argv.join(' '));
    assert.equal(res.stdout, '', argv.join(' '));
  }
});

void test('operation errors exit 1 and print the code, the message and the problems', async (t) => {
  const srv = await scriptedServer((_req, res) =>
    sendJson(res, 400, {
      error: {
        code: 'FLT_FILTER_INVALID',
        message: 'bad filter',
        details: { problems: ['at 7: expected a value'] },
      },
    }),
  );
  t.after(() => srv.close());
  const res = await cli(['--server', srv.url, 'devices', 'ls', '--filter', 'role==('], {
    env: { FLOTILLA_TOKEN: 'flt_at_t', FLOTILLA_CONFIG_DIR: '/nonexistent' },
  });
  assert.equal(res.code, 1);
  assert.equal(res.stderr, 'error [FLT_FILTER_INVALID]: bad filter\n  - at 7: expected a value\n');
  assert.equal(res.stdout, '');
  const sent = new URL(srv.requests[0]?.url ?? '', srv.url);
  assert.equal(sent.pathname, '/api/v1/devices');
  assert.equal(sent.searchParams.get('filter'), 'role==(');
  assert.equal(srv.requests[0]?.headers.authorization, 'Bearer flt_at_t');
});

void test('without credentials, commands say how to log in (exit 1)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flt-cli-nocred-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const res = await cli(['devices', 'ls'], { env: { FLOTILLA_CONFIG_DIR: dir } });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /^error \[FLT_UNAUTHENTICATED\]: not logged in: run `flotilla login/);
});

void test('a stored token is never sent to a server other than the one that issued it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flt-cli-leak-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const other = await scriptedServer((_req, res) =>
    sendJson(res, 200, { items: [], total: 0, limit: 50, offset: 0 }),
  );
  t.after(() => other.close());
  await writeCredentials(dir, { server: 'http://127.0.0.1:1', token: 'flt_at_secret', username: 'admin' });
  const res = await cli(['--server', other.url, 'devices', 'ls'], { env: { FLOTILLA_CONFIG_DIR: dir } });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /FLT_UNAUTHENTICATED/);
  assert.equal(other.requests.length, 0);
});

void test('a corrupt credentials file is reported, not a crash', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flt-cli-corrupt-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'credentials.json'), '[]');
  const res = await cli(['whoami'], { env: { FLOTILLA_CONFIG_DIR: dir } });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /^error \[FLT_CONFIG_INVALID\]: .*credentials\.json is malformed/);
});

void test('login refuses to run without --password-stdin and never reads a password from argv', async () => {
  const res = await cli(['--server', 'http://127.0.0.1:1', 'login', '--user', 'admin', 'hunter2']);
  assert.equal(res.code, 2);
});

void test('logout with an unreachable server still deletes the credentials and names the token to revoke', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'flt-cli-logout-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeCredentials(dir, {
    server: 'http://127.0.0.1:1',
    token: 'flt_at_x',
    username: 'admin',
    tokenId: 'tok_1',
  });
  const res = await cli(['logout', '--json'], { env: { FLOTILLA_CONFIG_DIR: dir } });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /^warning: could not revoke token tok_1 on http:\/\/127\.0\.0\.1:1/);
  assert.deepEqual(JSON.parse(res.stdout), {
    loggedOut: true,
    revoked: false,
    server: 'http://127.0.0.1:1',
    username: 'admin',
  });
  assert.deepEqual(await readdir(dir), []);
});

void test('--version belongs to subcommands when it is not alone: agent --version, release push --version', async () => {
  const agent = await cli(['agent', '--version']);
  assert.equal(agent.code, 0);
  assert.match(agent.stdout, /^flotilla-agent \d+\.\d+\.\d+/);
  const push = await cli(['release', 'push', '--help']);
  assert.equal(push.code, 0);
  assert.match(push.stdout, /--version <version>/);
  const short = await cli(['-V']);
  assert.equal(short.code, 0);
});

void test('agent --dry-run prints the plan without executing: --json for scripts', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-dry-'));
  try {
    const res = await cli(['agent', '--data-dir', dataDir, '--dry-run', '--json']);
    assert.equal(res.code, 0, res.stderr);
    const plan = JSON.parse(res.stdout) as { plans: unknown[]; assignmentError?: { code: string } };
    assert.deepEqual(plan.plans, []);
    assert.equal(
      plan.assignmentError?.code,
      'FLT_UNAVAILABLE',
      'a device not enrolled has no known assignment',
    );
    const human = await cli(['agent', '--data-dir', dataDir, '--dry-run']);
    assert.match(human.stdout, /no apps assigned or installed/);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
