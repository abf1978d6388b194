/** A real Flotilla server on a free port with a temp data dir, and a temp CLI config dir. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveServerConfig, startServer } from '@flotilla/server';
import { cli } from './memory-io.js';
import type { CliResult } from './memory-io.js';

export const ADMIN_PASSWORD = 'cli-test-admin-password';

export interface TestServer {
  url: string;
  configDir: string;
  /** Runs the CLI in-process against this server's config dir. */
  run(argv: string[], options?: { stdin?: string; env?: Record<string, string> }): Promise<CliResult>;
  close(): Promise<void>;
}

export async function startTestServer(): Promise<TestServer> {
  const root = await mkdtemp(join(tmpdir(), 'flt-cli-srv-'));
  const configDir = join(root, 'config');
  const config = resolveServerConfig({
    flags: { dataDir: join(root, 'server'), listen: '127.0.0.1:0', logLevel: 'silent' },
    env: { FLOTILLA_ADMIN_PASSWORD: ADMIN_PASSWORD },
  });
  const server = await startServer(config);
  return {
    url: server.url,
    configDir,
    run: (argv, options = {}) =>
      cli(argv, { env: { FLOTILLA_CONFIG_DIR: configDir, ...options.env }, stdin: options.stdin }),
    close: async () => {
      await server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** An API token of the admin user of the server at `base` (logged in with `password`). */
export async function adminApiToken(base: string, password: string, name: string): Promise<string> {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const token = await fetch(`${base}/api/v1/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ name }),
  });
  return ((await token.json()) as { secret: string }).secret;
}
