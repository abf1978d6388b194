/**
 * What a new user hits when starting things twice or after a failed start, through the real
 * `flotilla` executable: one server or agent per data directory, nothing created when the port is
 * taken, a lost generated admin password reset offline, and no stack trace for an expected refusal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli, memoryIo } from './helpers/memory-io.js';
import { runCli } from '../src/program.js';

const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const bin = fileURLToPath(new URL(`../src/bin.${ext}`, import.meta.url));

interface Proc {
  pid: number;
  output: () => string;
  exited: Promise<number | null>;
  stop: () => Promise<number | null>;
}

function run(args: string[], env: Record<string, string | undefined> = {}): Proc {
  const { FLOTILLA_ADMIN_PASSWORD: _ignored, ...inherited } = process.env;
  const child = spawn(process.execPath, [...process.execArgv, bin, ...args], {
    env: { ...inherited, FLOTILLA_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return {
    pid: child.pid ?? 0,
    output: () => out,
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Waits (bounded by attempts) until `pattern` appears in the output; fails if the process exits first. */
async function waitForOutput(proc: Proc, pattern: RegExp): Promise<RegExpExecArray> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const m = pattern.exec(proc.output());
    if (m) return m;
    const state = await Promise.race([
      proc.exited.then(() => 'exited' as const),
      new Promise<'running'>((r) => setTimeout(() => r('running'), 100)),
    ]);
    if (state === 'exited') {
      const last = pattern.exec(proc.output());
      if (last) return last;
      throw new Error(`exited before printing ${String(pattern)}:\n${proc.output()}`);
    }
  }
  throw new Error(`never printed ${String(pattern)}:\n${proc.output()}`);
}

/** The exit code, or (after a bounded wait) kills the process and fails: it should have refused to start. */
async function refused(proc: Proc): Promise<number | null> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const state = await Promise.race([
      proc.exited.then((code) => ({ code })),
      new Promise<null>((r) => setTimeout(() => r(null), 100)),
    ]);
    if (state) return state.code;
  }
  await proc.stop();
  throw new Error(`it kept running instead of refusing to start:\n${proc.output()}`);
}

async function occupy(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const address = server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, server };
}

void test('a second server on the same data directory refuses to start, naming the first one; the first keeps serving', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-lock-srv-'));
  const first = run(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
  t.after(async () => {
    await first.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const url = (await waitForOutput(first, /listening on (http:\/\/\S+)/))[1] ?? '';
  const second = run(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
  assert.equal(await refused(second), 1, second.output());
  assert.match(second.output(), /error \[FLT_DATA_DIR_LOCKED\]: .* is in use by flotilla server \(pid (\d+)/);
  assert.equal(Number(/pid (\d+)/.exec(second.output())?.[1]), first.pid);
  assert.doesNotMatch(second.output(), /listening on/);
  assert.ok((await fetch(`${url}/readyz`)).ok, 'the first server still serves');
  // Once the first has stopped, its lock is gone and the directory can be used again.
  assert.equal(await first.stop(), 0, first.output());
  assert.equal(existsSync(join(dataDir, 'flotilla.lock')), false);
  const third = run(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
  await waitForOutput(third, /listening on/);
  assert.equal(await third.stop(), 0, third.output());
});

void test('a second agent on the same data directory refuses to start, naming the first; a killed holder leaves a lock that is taken over', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-lock-agent-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const first = run(['agent', '--offline', '--data-dir', dataDir]);
  t.after(() => first.stop());
  await waitForOutput(first, /offline: not contacting the server/);
  const second = run(['agent', '--offline', '--data-dir', dataDir]);
  assert.equal(await refused(second), 1, second.output());
  assert.match(second.output(), /error \[FLT_DATA_DIR_LOCKED\]: .* is in use by flotilla agent \(pid (\d+)/);
  assert.equal(Number(/pid (\d+)/.exec(second.output())?.[1]), first.pid);
  // SIGKILL: no chance to remove the lock; the next start sees its pid gone and takes it over.
  process.kill(first.pid, 'SIGKILL');
  await first.exited;
  assert.ok(existsSync(join(dataDir, 'flotilla.lock')));
  const third = run(['agent', '--offline', '--data-dir', dataDir]);
  await waitForOutput(third, /offline: not contacting the server/);
  assert.equal(await third.stop(), 0, third.output());
});

void test('a server that cannot listen creates nothing; the next start creates the admin and prints its password', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-bind-'));
  const taken = await occupy();
  t.after(async () => {
    taken.server.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const failed = run(['server', '--listen', `127.0.0.1:${taken.port}`, '--data-dir', dataDir]);
  assert.equal(await refused(failed), 1, failed.output());
  assert.match(failed.output(), /error \[FLT_CONFIG_INVALID\]: cannot listen on 127\.0\.0\.1:\d+/);
  assert.match(failed.output(), /is already in use/);
  assert.equal(existsSync(join(dataDir, 'flotilla.db')), false, 'no database was created');
  await new Promise<void>((r) => taken.server.close(() => r()));
  const next = run(['server', '--listen', `127.0.0.1:${taken.port}`, '--data-dir', dataDir]);
  await waitForOutput(next, /created admin user "admin" with password: \S{12,}/);
  assert.equal(await next.stop(), 0, next.output());
});

void test('an admin whose generated password was never used: the start says how to reset it; reset-password works offline', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'flt-reset-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const dataDir = join(root, 'server');
  const configDir = join(root, 'config');
  // The first start's password is lost (nobody read it).
  const first = run(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
  await waitForOutput(first, /created admin user "admin" with password/);
  assert.equal(await first.stop(), 0);

  const second = run(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
  await waitForOutput(second, /listening on/);
  const hint = await waitForOutput(
    second,
    /nobody has signed in as "admin" yet.*\n\s+(flotilla users reset-password admin --data-dir \S+)/,
  );
  assert.equal(hint[1], `flotilla users reset-password admin --data-dir ${dataDir}`);
  assert.doesNotMatch(second.output(), /created admin user/);
  // Offline only: refused while the server runs on the directory.
  const busy = await cli(['users', 'reset-password', 'admin', '--data-dir', dataDir], { env: {} });
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /^error \[FLT_DATA_DIR_LOCKED\]: .*flotilla server \(pid \d+/);
  assert.equal(await second.stop(), 0);

  const reset = await cli(['users', 'reset-password', 'admin', '--data-dir', dataDir], { env: {} });
  assert.equal(reset.code, 0, reset.stderr);
  const password = /new password: (\S+)/.exec(reset.stdout)?.[1];
  assert.ok(password, reset.stdout);
  const unknown = await cli(['users', 'reset-password', 'nobody', '--data-dir', dataDir], { env: {} });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^error \[FLT_NOT_FOUND\]: no user nobody/);

  const third = run(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
  t.after(() => third.stop());
  const url = (await waitForOutput(third, /listening on (http:\/\/\S+)/))[1] ?? '';
  const login = await cli(['--server', url, 'login', '--user', 'admin', '--password-stdin'], {
    env: { FLOTILLA_CONFIG_DIR: configDir },
    stdin: `${password}\n`,
  });
  assert.equal(login.code, 0, login.stderr);
  const audit = await cli(['audit', 'ls', '--action', 'user.reset_password', '--json'], {
    env: { FLOTILLA_CONFIG_DIR: configDir },
  });
  assert.equal((JSON.parse(audit.stdout) as { items: unknown[] }).items.length, 1);
  assert.equal(await third.stop(), 0);
  // Signed in once: the hint is gone.
  const fourth = run(['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir]);
  await waitForOutput(fourth, /listening on/);
  assert.equal(await fourth.stop(), 0);
  assert.doesNotMatch(fourth.output(), /nobody has signed in/);
});

void test('an agent with an invalid registration key prints the clear message, no stack trace', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'flt-badkey-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const server = run(['server', '--listen', '127.0.0.1:0', '--data-dir', join(root, 'server')], {
    FLOTILLA_ADMIN_PASSWORD: 'bad-key-test-password',
  });
  t.after(() => server.stop());
  const url = (await waitForOutput(server, /listening on (http:\/\/\S+)/))[1] ?? '';
  const keyFile = join(root, 'key.txt');
  await writeFile(keyFile, 'flt_rk_not-a-real-registration-key\n');
  const agent = run([
    'agent',
    '--server',
    url,
    '--data-dir',
    join(root, 'agent'),
    '--registration-key-file',
    keyFile,
  ]);
  assert.equal(await refused(agent), 1, agent.output());
  assert.match(agent.output(), /error \[FLT_REGKEY_INVALID\]: /);
  assert.doesNotMatch(agent.output(), /\n\s+at /, 'no stack trace');
  assert.doesNotMatch(agent.output(), /"stack"/, 'no stack in the JSON log either');
});

void test('a SIGTERM while the agent starts stops it once it is up: exit 0, its data directory unlocked', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-lock-early-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const io = memoryIo({ env: { FLOTILLA_LOG_FORMAT: 'json' } });
  // The agent's first line is written while it starts (before `startAgent` returns): the signal comes then.
  const write = io.stdout.write.bind(io.stdout);
  let sent = false;
  io.stdout.write = (chunk: string): boolean => {
    const written = write(chunk);
    if (!sent) {
      sent = true;
      io.signals.emit('SIGTERM');
    }
    return written;
  };
  const running = runCli(['agent', '--offline', '--data-dir', dataDir], io);
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 10_000)));
  const code = await Promise.race([running, hung]);
  clearTimeout(timer);
  if (code === 'hung') {
    io.signals.emit('SIGTERM'); // a handler there by now: end the agent this test started
    await running;
  }
  assert.equal(code, 0, io.stdout.text);
  assert.match(io.stdout.text, /agent stopped/);
  assert.equal(existsSync(join(dataDir, 'flotilla.lock')), false);
});
