/**
 * The server's flags come from its one declaration of configuration keys (SERVER_CONFIG): every key
 * with a flag is accepted by the real `flotilla server` executable, and a key set in the file, the
 * environment and as a flag reaches the configuration as file < env < flags (docs/operations.md
 * "Configuration"). Bad values are refused with FLT_CONFIG_INVALID, all listed, named by source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { SERVER_CONFIG } from '@flotilla/server';

const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const bin = fileURLToPath(new URL(`../src/bin.${ext}`, import.meta.url));

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLOTILLA_')));
  return { ...env, FLOTILLA_LOG_FORMAT: 'json', ...extra };
}

function flotilla(args: string[], env: Record<string, string> = {}): { code: number | null; out: string } {
  const result = spawnSync(process.execPath, [...process.execArgv, bin, ...args], {
    env: cleanEnv(env),
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: result.status, out: `${result.stdout}${result.stderr}` };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'flt-server-flags-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

void test('flotilla server --help lists a flag for every configuration key that declares one', () => {
  const { code, out } = flotilla(['server', '--help']);
  assert.equal(code, 0, out);
  const flags = SERVER_CONFIG.cliOptions.map((o) => o.flags);
  for (const kept of ['--data-dir <dir>', '--database <url>', '--log-level <level>', '--log-format <format>'])
    assert.ok(flags.includes(kept), kept);
  assert.ok(flags.includes('--session-ttl <duration>'));
  assert.ok(!flags.some((f) => f.startsWith('--admin-password')), 'the admin password is env only');
  for (const flag of [
    ...flags,
    '--listen <host:port>',
    '--config <file>',
    '--gateway-config <file>',
    '--redis <url>',
  ])
    assert.ok(out.includes(flag), `--help shows ${flag}:\n${out}`);
});

void test('one key from file, env and flag: the flag wins, then env, then the file', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'server.yaml');
  // 1s, 2s and 3s are all below sessionTtlMs's minimum: the refusal names the source that won.
  writeFileSync(file, 'sessionTtlMs: 1s\n');
  const base = ['server', '--config', file, '--data-dir', join(dir, 'server'), '--listen', '127.0.0.1:0'];
  const env = { FLOTILLA_SESSION_TTL_MS: '2s' };

  const flag = flotilla([...base, '--session-ttl', '3s'], env);
  assert.notEqual(flag.code, 0, flag.out);
  assert.match(flag.out, /FLT_CONFIG_INVALID/);
  assert.match(flag.out, /--session-ttl \(sessionTtlMs\): must be >= 60000/);
  assert.doesNotMatch(flag.out, /FLOTILLA_SESSION_TTL_MS/);

  const fromEnv = flotilla(base, env);
  assert.match(fromEnv.out, /FLT_CONFIG_INVALID/);
  assert.match(fromEnv.out, /FLOTILLA_SESSION_TTL_MS \(sessionTtlMs\)/);

  const fromFile = flotilla(base);
  assert.match(fromFile.out, /FLT_CONFIG_INVALID/);
  assert.match(fromFile.out, /server\.yaml.*sessionTtlMs/);
});

void test('bad flag values are refused together, each named by its flag', (t) => {
  const dir = tempDir(t);
  const { code, out } = flotilla([
    'server',
    '--data-dir',
    join(dir, 'server'),
    '--listen',
    '127.0.0.1:0',
    '--max-connections',
    '-1',
    '--trust-proxy',
    'maybe',
    '--public-url',
    'ftp://nope',
  ]);
  assert.notEqual(code, 0, out);
  assert.match(out, /FLT_CONFIG_INVALID/);
  for (const flag of ['--max-connections', '--trust-proxy', '--public-url'])
    assert.match(out, new RegExp(`${flag}[ :]`), `the problem names ${flag}:\n${out}`);
});

function get(url: string, headerBytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/healthz`, { headers: { 'x-pad': 'a'.repeat(headerBytes) } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

void test('a valid flag value reaches the running server over env and file (--max-header-bytes)', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'server.yaml');
  writeFileSync(file, 'maxHeaderBytes: 1024\n');
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      bin,
      'server',
      '--config',
      file,
      '--data-dir',
      join(dir, 'server'),
      '--listen',
      '127.0.0.1:0',
      '--max-header-bytes',
      '8192',
    ],
    { env: cleanEnv({ FLOTILLA_MAX_HEADER_BYTES: '1024', FLOTILLA_LOG_LEVEL: 'warn' }), stdio: 'pipe' },
  );
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
  let stderr = '';
  child.stdout.resume();
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1] as string);
    });
    child.on('exit', () => reject(new Error(`server exited:\n${stderr}`)));
  });
  assert.equal(await get(url, 4096), 200, "a 4 KiB header fits under the flag's 8 KiB");
  assert.equal(await get(url, 16_384), 431, 'a 16 KiB header does not');
});
