import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { resolveServerConfig } from '../../src/config.js';
import type { ResolveConfigInput } from '../../src/config.js';
import { forEachDialect } from '../helpers/app.js';
import { TEST_POSTGRES_URL } from '../helpers/postgres.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flt-config-'));
});
after(() => rm(dir, { recursive: true, force: true }));

async function yamlFile(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function problemsOf(input: ResolveConfigInput): string[] {
  try {
    resolveServerConfig(input);
  } catch (e) {
    assert.ok(e instanceof FlotillaError);
    assert.equal(e.code, 'FLT_CONFIG_INVALID');
    return (e.details as { problems: string[] }).problems;
  }
  assert.fail('expected FLT_CONFIG_INVALID');
}

void it('defaults: loopback:7070, SQLite under the data dir, units in names', () => {
  const c = resolveServerConfig({ env: {} });
  assert.equal(c.listenHost, '127.0.0.1');
  assert.equal(c.listenPort, 7070);
  assert.equal(c.dataDir, resolve('./.flotilla/server'));
  assert.equal(c.database, `sqlite:${join(resolve('./.flotilla/server'), 'flotilla.db')}`);
  assert.equal(c.bodyLimitBytes, 1024 * 1024);
  assert.equal(c.maxHeaderBytes, 16 * 1024);
  assert.equal(c.sessionTtlMs, 12 * 3_600_000);
  assert.equal(c.deviceTokenTtlMs, 15 * 60_000);
  assert.equal(c.nonceTtlMs, 5 * 60_000);
  assert.equal(c.devicePollIntervalMs, 30_000);
  assert.equal(c.heartbeatIntervalMs, 25_000);
  assert.equal(c.offlineAfterMs, 90_000);
  assert.equal(c.adminUsername, 'admin');
  assert.equal(c.adminPassword, null);
  assert.equal(c.publicUrl, null);
  assert.equal(c.trustProxy, false);
  assert.ok(Object.isFrozen(c));
});

void it('precedence: file < environment < flags', async () => {
  const file = await yamlFile(
    'precedence.yaml',
    [
      'listenPort: 1111',
      'logLevel: debug',
      'sessionTtlMs: 2h',
      'bodyLimitBytes: 4096',
      'dataDir: /srv/from-file',
    ].join('\n'),
  );
  const env = {
    FLOTILLA_CONFIG: file,
    FLOTILLA_LISTEN_PORT: '2222',
    FLOTILLA_LOG_LEVEL: 'warn',
    FLOTILLA_TRUST_PROXY: 'true',
  };
  const fromFileAndEnv = resolveServerConfig({ env });
  assert.equal(fromFileAndEnv.listenPort, 2222);
  assert.equal(fromFileAndEnv.logLevel, 'warn');
  assert.equal(fromFileAndEnv.sessionTtlMs, 2 * 3_600_000);
  assert.equal(fromFileAndEnv.bodyLimitBytes, 4096);
  assert.equal(fromFileAndEnv.trustProxy, true);
  assert.equal(fromFileAndEnv.database, 'sqlite:/srv/from-file/flotilla.db');

  const withFlags = resolveServerConfig({
    env,
    flags: { listen: '0.0.0.0:3333', logLevel: 'error', dataDir: '/srv/flag' },
  });
  assert.deepEqual(
    [withFlags.listenHost, withFlags.listenPort, withFlags.logLevel],
    ['0.0.0.0', 3333, 'error'],
  );
  assert.equal(withFlags.database, 'sqlite:/srv/flag/flotilla.db');
  assert.equal(resolveServerConfig({ env, flags: { listen: '[::1]:4444' } }).listenHost, '::1');
  assert.equal(resolveServerConfig({ env, flags: { listen: ':5555' } }).listenPort, 5555);
});

void it('the flag --config is used instead of FLOTILLA_CONFIG', async () => {
  const a = await yamlFile('a.yaml', 'listenPort: 1000\n');
  const b = await yamlFile('b.yaml', 'listenPort: 2000\n');
  assert.equal(resolveServerConfig({ env: { FLOTILLA_CONFIG: a }, flags: { config: b } }).listenPort, 2000);
});

void it('lists every problem from every source in one error', async () => {
  const file = await yamlFile(
    'bad.yaml',
    ['listenPort: 70000', 'logFormat: xml', 'nonsense: 1', 'adminPassword: in-a-file'].join('\n'),
  );
  const problems = problemsOf({
    env: {
      FLOTILLA_CONFIG: file,
      FLOTILLA_SESSION_TTL_MS: 'forever',
      FLOTILLA_TRUST_PROXY: 'maybe',
      FLOTILLA_BODY_LIMIT_BYTES: '12',
    },
    flags: { listen: 'no-port-here', database: 'mysql://x', logLevel: 'loud' },
  });
  const expectMention = [
    'listenPort',
    'logFormat',
    'unknown key "nonsense"',
    'FLOTILLA_ADMIN_PASSWORD',
    'FLOTILLA_SESSION_TTL_MS',
    'FLOTILLA_TRUST_PROXY',
    'FLOTILLA_BODY_LIMIT_BYTES',
    '--listen',
    '--database',
    '--log-level',
  ];
  for (const needle of expectMention) {
    assert.ok(
      problems.some((p) => p.includes(needle)),
      `no problem mentions ${needle}: ${problems.join(' | ')}`,
    );
  }
  assert.ok(problems.length >= expectMention.length);
});

void it('an unreadable or malformed file is a config problem, not a crash', async () => {
  assert.match(
    problemsOf({ env: {}, flags: { config: join(dir, 'missing.yaml') } })[0]!,
    /cannot read.*ENOENT/,
  );
  const broken = await yamlFile('broken.yaml', 'listenPort: [1, 2\n');
  assert.match(problemsOf({ env: {}, flags: { config: broken } })[0]!, /not valid YAML/);
  const list = await yamlFile('list.yaml', '- a\n- b\n');
  assert.match(problemsOf({ env: {}, flags: { config: list } })[0]!, /mapping/);
  const dup = await yamlFile('dup.yaml', 'listenPort: 1\nlistenPort: 2\n');
  assert.match(problemsOf({ env: {}, flags: { config: dup } })[0]!, /not valid YAML/);
});

void it('the admin password comes from the environment only and is validated', () => {
  assert.equal(
    resolveServerConfig({ env: { FLOTILLA_ADMIN_PASSWORD: 'long-enough-password' } }).adminPassword,
    'long-enough-password',
  );
  assert.ok(
    problemsOf({ env: { FLOTILLA_ADMIN_PASSWORD: 'short' } }).some((p) =>
      p.includes('FLOTILLA_ADMIN_PASSWORD'),
    ),
  );
});

forEachDialect((dialect) => {
  void it(`accepts a ${dialect} database URL and rejects malformed ones`, () => {
    const url = dialect === 'postgres' ? TEST_POSTGRES_URL : `sqlite:${join(dir, 'x.db')}`;
    assert.equal(resolveServerConfig({ env: { FLOTILLA_DATABASE: url } }).database, url);
    const bad = dialect === 'postgres' ? 'postgres:/missing-slash' : 'sqlite:';
    assert.ok(problemsOf({ env: { FLOTILLA_DATABASE: bad } }).some((p) => p.includes('FLOTILLA_DATABASE')));
  });
});
