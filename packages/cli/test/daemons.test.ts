import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli } from './helpers/memory-io.js';

const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const bin = fileURLToPath(new URL(`../src/bin.${ext}`, import.meta.url));

void test('an invalid server or agent configuration exits 1 listing every problem once', async () => {
  const server = await cli(['server', '--listen', 'nope', '--data-dir', join(tmpdir(), 'flt-never')]);
  assert.equal(server.code, 1);
  assert.match(server.stderr, /^error \[FLT_CONFIG_INVALID\]: /);
  assert.equal(server.stderr.split('expected host:port').length - 1, 1, server.stderr);

  const agent = await cli(['agent', '--data-dir', join(tmpdir(), 'flt-never'), '--poll-interval', 'never'], {
    env: {},
  });
  assert.equal(agent.code, 1);
  assert.match(agent.stderr, /^error \[FLT_CONFIG_INVALID\]: /);
  assert.match(agent.stderr, /--poll-interval/);

  const format = await cli(['server', '--log-format', 'xml']);
  assert.equal(format.code, 2);
});

/** Runs `flotilla server` as a real process until its URL is printed, then stops it with SIGTERM. */
async function serverRun(dataDir: string): Promise<{ code: number | null; stderr: string; ready: boolean }> {
  const { FLOTILLA_ADMIN_PASSWORD: _ignored, ...env } = process.env;
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      bin,
      'server',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
    ],
    { env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  const url = await new Promise<string | null>((resolve) => {
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m?.[1]) resolve(m[1]);
    });
    void exited.then(() => resolve(null));
  });
  let ready = false;
  if (url) {
    ready = (await fetch(`${url}/readyz`)).ok;
    child.kill('SIGTERM');
  }
  return { code: await exited, stderr, ready };
}

void test('flotilla server prints its URL and the generated admin password once, and stops on SIGTERM', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-cli-server-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const first = await serverRun(dataDir);
  assert.equal(first.code, 0, first.stderr);
  assert.ok(first.ready);
  assert.match(first.stderr, /created admin user "admin" with password: \S{12,}/);
  const second = await serverRun(dataDir);
  assert.equal(second.code, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /created admin user/);
  // Nobody has signed in with the generated password yet: the second start says how to reset it.
  assert.match(second.stderr, /flotilla users reset-password admin --data-dir /);
});
