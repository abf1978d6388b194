import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { resolveAgentConfig } from '../src/config.js';
import { tempDir } from '@flotilla/testkit';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FlotillaError);
    assert.equal(e.code, 'FLT_CONFIG_INVALID');
    return (e.details as { problems: string[] }).problems;
  }
  assert.fail('expected FLT_CONFIG_INVALID');
}

void test('defaults: data dir, inventory dir, intervals, frozen', () => {
  const config = resolveAgentConfig({ env: {} });
  assert.equal(config.dataDir, resolve('./.flotilla/agent'));
  assert.equal(config.inventoryDir, join(resolve('./.flotilla/agent'), 'inventory.d'));
  assert.equal(config.pollIntervalMs, 30_000);
  assert.equal(config.inventoryIntervalMs, 3_600_000);
  assert.equal(config.serverUrl, null);
  assert.equal(config.offline, false);
  assert.deepEqual(config.tags, []);
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.tags));
  assert.throws(() => {
    (config as { pollIntervalMs: number }).pollIntervalMs = 1;
  }, TypeError);
});

void test('file < env < flags, each source overriding the one before', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'agent.yaml');
  writeFileSync(
    file,
    [
      'serverUrl: http://file.example:1',
      'pollIntervalMs: 10s',
      'tags: [from-file]',
      'logLevel: debug',
      'inventoryIntervalMs: 2h',
    ].join('\n'),
  );
  const env = {
    FLOTILLA_AGENT_CONFIG: file,
    FLOTILLA_SERVER_URL: 'http://env.example:2/',
    FLOTILLA_POLL_INTERVAL_MS: '20s',
    FLOTILLA_REGISTRATION_KEY: '  flt_rk_secretsecret \n',
  };
  const fromEnv = resolveAgentConfig({ env });
  assert.equal(fromEnv.serverUrl, 'http://env.example:2');
  assert.equal(fromEnv.pollIntervalMs, 20_000);
  assert.deepEqual(fromEnv.tags, ['from-file']);
  assert.equal(fromEnv.logLevel, 'debug');
  assert.equal(fromEnv.inventoryIntervalMs, 7_200_000);
  assert.equal(fromEnv.registrationKey, 'flt_rk_secretsecret');

  const fromFlags = resolveAgentConfig({
    env,
    flags: {
      server: 'https://flag.example/prefix/',
      pollInterval: '45s',
      tags: ['a', 'b'],
      offline: true,
      dataDir: dir,
    },
  });
  assert.equal(fromFlags.serverUrl, 'https://flag.example/prefix');
  assert.equal(fromFlags.pollIntervalMs, 45_000);
  assert.deepEqual(fromFlags.tags, ['a', 'b']);
  assert.equal(fromFlags.offline, true);
  assert.equal(fromFlags.dataDir, dir);
  assert.equal(fromFlags.inventoryDir, join(dir, 'inventory.d'));
  assert.equal(fromFlags.logLevel, 'debug', 'a key no flag sets keeps the file value');
});

void test('a flags.config file wins over FLOTILLA_AGENT_CONFIG; env tags are comma-separated', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.yaml'), 'logFormat: pretty\n');
  writeFileSync(join(dir, 'b.yaml'), 'logFormat: json\n');
  const config = resolveAgentConfig({
    env: { FLOTILLA_AGENT_CONFIG: join(dir, 'b.yaml'), FLOTILLA_TAGS: 'x, y,,z' },
    flags: { config: join(dir, 'a.yaml') },
  });
  assert.equal(config.logFormat, 'pretty');
  assert.deepEqual(config.tags, ['x', 'y', 'z']);
});

void test('every problem is listed in one error, each naming its source', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, 'bogusKey: 1\nregistrationKey: flt_rk_in_a_file\nheartbeatIntervalMs: soon\n');
  const problems = problemsOf(() =>
    resolveAgentConfig({
      env: { FLOTILLA_AGENT_CONFIG: file, FLOTILLA_OFFLINE: 'maybe', FLOTILLA_REGISTRATION_KEY: 'short' },
      flags: {
        server: 'ftp://nope',
        tags: ['bad tag'],
        logLevel: 'loud',
        pollInterval: '10ms',
        inventoryInterval: 'often',
      },
    }),
  );
  const expectations: [RegExp, string][] = [
    [/^.*agent\.yaml: unknown key "bogusKey"/, 'unknown key'],
    [/agent\.yaml: "registrationKey" may only be set with FLOTILLA_REGISTRATION_KEY/, 'secret in a file'],
    [/agent\.yaml: heartbeatIntervalMs: must be a duration/, 'bad file duration'],
    [/^FLOTILLA_OFFLINE: must be true or false/, 'bad env boolean'],
    [/^FLOTILLA_REGISTRATION_KEY: .*\(got \(secret\)\)$/, 'short key, value hidden'],
    [/^--server: must be an http/, 'bad URL scheme'],
    [/^--tags: /, 'bad tag'],
    [/^--log-level: must be one of fatal, error, warn, info, debug, trace, silent/, 'bad level'],
    [/^--poll-interval: .*1000/, 'too short interval'],
    [/^--inventory-interval: must be a duration/, 'bad duration'],
  ];
  for (const [pattern, what] of expectations) {
    assert.ok(
      problems.some((p) => pattern.test(p)),
      `${what}: no problem matches ${String(pattern)} in\n${problems.join('\n')}`,
    );
  }
  assert.equal(problems.length, expectations.length, problems.join('\n'));
  assert.ok(!problems.join('\n').includes('short'), 'the registration key never appears in messages');
});

void test('unreadable or malformed config files are problems, not crashes', (t) => {
  const dir = tempDir(t);
  assert.match(
    problemsOf(() => resolveAgentConfig({ env: {}, flags: { config: join(dir, 'missing.yaml') } }))[0] ?? '',
    /ENOENT/,
  );
  writeFileSync(join(dir, 'bad.yaml'), 'a: [unclosed\n');
  assert.match(
    problemsOf(() => resolveAgentConfig({ env: {}, flags: { config: join(dir, 'bad.yaml') } }))[0] ?? '',
    /not valid YAML/,
  );
  writeFileSync(join(dir, 'list.yaml'), '- a\n- b\n');
  assert.match(
    problemsOf(() => resolveAgentConfig({ env: {}, flags: { config: join(dir, 'list.yaml') } }))[0] ?? '',
    /mapping/,
  );
  writeFileSync(join(dir, 'dup.yaml'), 'logLevel: info\nlogLevel: debug\n');
  assert.match(
    problemsOf(() => resolveAgentConfig({ env: {}, flags: { config: join(dir, 'dup.yaml') } }))[0] ?? '',
    /not valid YAML/,
  );
});

void test('server URLs with credentials, queries or fragments are refused', () => {
  for (const server of ['http://user:pw@host', 'http://host/?a=1', 'http://host/#x', 'not a url']) {
    assert.equal(problemsOf(() => resolveAgentConfig({ env: {}, flags: { server } })).length, 1, server);
  }
});

void test('stageVerify: stamp by default, content from the environment, anything else refused', () => {
  assert.equal(resolveAgentConfig({ env: {} }).stageVerify, 'stamp');
  assert.equal(resolveAgentConfig({ env: { FLOTILLA_STAGE_VERIFY: 'content' } }).stageVerify, 'content');
  const problems = problemsOf(() => resolveAgentConfig({ env: { FLOTILLA_STAGE_VERIFY: 'never' } }));
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0]!, /^FLOTILLA_STAGE_VERIFY: /);
});

void test('deltaThreads: 1 by default, 0 from the environment, negative, fractional or over 8 refused', () => {
  assert.equal(resolveAgentConfig({ env: {} }).deltaThreads, 1);
  assert.equal(resolveAgentConfig({ env: { FLOTILLA_DELTA_THREADS: '0' } }).deltaThreads, 0);
  for (const bad of ['-1', '1.5', '9', 'two']) {
    const problems = problemsOf(() => resolveAgentConfig({ env: { FLOTILLA_DELTA_THREADS: bad } }));
    assert.equal(problems.length, 1, `${bad}: ${problems.join('\n')}`);
    assert.match(problems[0]!, /^FLOTILLA_DELTA_THREADS: /);
  }
});
