/** Shared setup for the keys, release and deploy tests: a logged-in CLI against a real server. */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import { readCredentials } from '../src/config/credentials.js';
import { ADMIN_PASSWORD, startTestServer } from './helpers/server.js';
import type { TestServer } from './helpers/server.js';

export async function loggedInServer(): Promise<TestServer> {
  const srv = await startTestServer();
  const res = await srv.run(['--server', srv.url, 'login', '--user', 'admin', '--password-stdin'], {
    stdin: `${ADMIN_PASSWORD}\n`,
  });
  if (res.code !== 0) throw new Error(`login failed: ${res.stderr}`);
  return srv;
}

/** An API client with the token the CLI stored, for checking what the server holds. */
export async function apiClient(srv: TestServer): Promise<ApiClient> {
  const stored = await readCredentials(srv.configDir);
  if (!stored) throw new Error('not logged in');
  return new ApiClient({ baseUrl: srv.url, token: stored.token });
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Writes `files` (relative path → content) under `root`. */
export async function writeTree(root: string, files: Record<string, Buffer | string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** `count` files of `size` random (incompressible) bytes each: `data/file-<i>.bin`. */
export function randomFiles(count: number, size: number): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < count; i++) files[`data/file-${String(i).padStart(2, '0')}.bin`] = randomBytes(size);
  return files;
}
