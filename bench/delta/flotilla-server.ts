/**
 * A real `flotilla server` process (SQLite, temp data dir, free port on 127.0.0.1), with releases
 * pushed by the real CLI, as an operator does: `login --password-stdin`, `keys init --no-passphrase`,
 * `release push DIR --app A --version V --json`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './exec.js';

/** The CLI from the built tree; this file runs from bench/dist/delta (or bench/delta under tsx). */
function findCli(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of [
    ['..', '..', '..'],
    ['..', '..'],
  ]) {
    const bin = join(resolve(here, ...up), 'packages', 'cli', 'dist', 'src', 'bin.js');
    if (existsSync(bin)) return bin;
  }
  throw new Error('packages/cli/dist/src/bin.js not found: build first (npx tsc -b)');
}
const cliBin = findCli();
const PASSWORD = 'bench-admin-password';

export interface FlotillaServer {
  base: string;
  /** An operator API token for the object routes. */
  token: string;
  /** Pushes `dir` as a release with the CLI and returns the CLI's JSON output. */
  push(dir: string, app: string, version: string): Promise<unknown>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

async function waitReady(base: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`flotilla server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('flotilla server did not become ready');
}

async function apiToken(base: string): Promise<string> {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: PASSWORD }),
  });
  if (!login.ok) throw new Error(`login: ${login.status} ${await login.text()}`);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const r = await fetch(`${base}/api/v1/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ name: 'bench-delta' }),
  });
  if (!r.ok) throw new Error(`token: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { secret: string }).secret;
}

export async function startFlotillaServer(): Promise<FlotillaServer> {
  const work = await mkdtemp(join(tmpdir(), 'flt-delta-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const args = ['server', '--data-dir', join(work, 'data'), '--listen', `127.0.0.1:${port}`];
  const child = spawn(process.execPath, [cliBin, ...args, '--log-level', 'warn', '--log-format', 'json'], {
    env: { ...process.env, FLOTILLA_ADMIN_PASSWORD: PASSWORD },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(work, { recursive: true, force: true });
  };
  try {
    await waitReady(base, child);
    const env = { ...process.env, FLOTILLA_CONFIG_DIR: join(work, 'cli') };
    const cli = (cliArgs: string[], input?: string) =>
      run(process.execPath, [cliBin, ...cliArgs], { env, ...(input === undefined ? {} : { input }) });
    await cli(['login', '--server', base, '--user', 'admin', '--password-stdin'], `${PASSWORD}\n`);
    await cli(['keys', 'init', '--no-passphrase']);
    const token = await apiToken(base);
    const push = async (dir: string, app: string, version: string): Promise<unknown> =>
      JSON.parse(
        (await cli(['release', 'push', dir, '--app', app, '--version', version, '--json'])).stdout,
      ) as unknown;
    return { base, token, push, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
