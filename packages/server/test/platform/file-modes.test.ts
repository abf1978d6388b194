/**
 * Files at rest (issue 13 item 7): whatever the umask, a real server keeps its data directory
 * 0700 and every file in it 0600 (database, WAL, objects, online keys, …), and tightens a data
 * directory whose modes are loose when it starts.
 */
import assert from 'node:assert/strict';
import { chmod, lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { ObjectRoutes, PACK_CODEC_HEADER, PACK_CONTENT_TYPE } from '@flotilla/protocol';
import { resolveServerConfig } from '../../src/config.js';
import { startServer } from '../../src/main.js';
import type { RunningServer } from '../../src/main.js';
import { TEST_ADMIN_PASSWORD } from '../helpers/app.js';
import { encodePack, recordsOf, treeOf } from '../objects/push.js';

/** Every path under `dir` (itself included) with its permission bits, symlinks excluded. */
async function modesUnder(dir: string): Promise<Map<string, { mode: number; dir: boolean }>> {
  const out = new Map<string, { mode: number; dir: boolean }>();
  const walk = async (path: string): Promise<void> => {
    const info = await lstat(path);
    if (info.isSymbolicLink()) return;
    out.set(path, { mode: info.mode & 0o7777, dir: info.isDirectory() });
    if (info.isDirectory()) for (const name of await readdir(path)) await walk(join(path, name));
  };
  await walk(dir);
  return out;
}

function loose(modes: Map<string, { mode: number; dir: boolean }>, root: string): string[] {
  return [...modes]
    .filter(([, m]) => m.mode !== (m.dir ? 0o700 : 0o600))
    .map(([p, m]) => `${p.slice(root.length) || '/'} ${m.mode.toString(8)}`);
}

let parent: string;
let dataDir: string;
let server: RunningServer | undefined;
let savedUmask: number;

const config = () =>
  resolveServerConfig({
    env: { FLOTILLA_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD, FLOTILLA_LOG_LEVEL: 'silent' },
    flags: { dataDir, listen: '127.0.0.1:0' },
  });

before(async () => {
  savedUmask = process.umask(0o022);
  parent = await mkdtemp(join(tmpdir(), 'flt-modes-'));
  dataDir = join(parent, 'data');
});
after(async () => {
  await server?.close();
  process.umask(savedUmask);
  await rm(parent, { recursive: true, force: true });
});

async function adminToken(url: string): Promise<string> {
  const login = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: TEST_ADMIN_PASSWORD }),
  });
  assert.equal(login.status, 200);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const created = await fetch(`${url}/api/v1/tokens`, {
    method: 'POST',
    headers: { cookie, 'content-type': 'application/json', origin: url },
    body: JSON.stringify({ name: 'modes' }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  return ((await created.json()) as { secret: string }).secret;
}

void it('with umask 022 the data dir is 0700 and every file under it 0600', async () => {
  server = await startServer(config());
  const token = await adminToken(server.url);
  // Objects: a pushed tree, through the real upload route.
  const tree = await treeOf({ 'a.txt': 'hello', 'sub/b.txt': 'world' });
  const upload = await fetch(`${server.url}${ObjectRoutes.upload}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': PACK_CONTENT_TYPE,
      [PACK_CODEC_HEADER]: 'identity',
    },
    body: await encodePack(await recordsOf(tree.store, tree.store.ids())),
  });
  assert.equal(upload.status, 200, await upload.clone().text());
  await upload.arrayBuffer();

  const modes = await modesUnder(dataDir);
  const names = [...modes.keys()].map((p) => p.slice(dataDir.length));
  for (const expected of [
    '',
    '/flotilla.db',
    '/flotilla.db-wal',
    '/flotilla.db-shm',
    '/objects',
    '/tuf-keys',
  ])
    assert.ok(names.includes(expected), `${expected || '/'} exists (saw ${names.join(', ')})`);
  assert.ok(
    names.some((n) => /^\/objects\/objects\/[0-9a-f]{2}\/[0-9a-f]{62}$/.test(n)),
    'an object file exists',
  );
  assert.ok(
    names.some((n) => n.startsWith('/tuf-keys/') && !modes.get(join(dataDir, n))?.dir),
    'an online key file exists',
  );
  assert.deepEqual(loose(modes, dataDir), []);
});

void it('a data dir with loose modes is tightened at start (key files excepted)', async () => {
  await server?.close();
  server = undefined;
  const keyFile = (path: string) => path.startsWith(join(dataDir, 'tuf-keys') + '/');
  for (const [path, m] of await modesUnder(dataDir))
    if (!keyFile(path)) await chmod(path, m.dir ? 0o755 : 0o644);
  assert.notDeepEqual(loose(await modesUnder(dataDir), dataDir), []);
  server = await startServer(config());
  assert.deepEqual(loose(await modesUnder(dataDir), dataDir), []);
});

void it('a key file readable by others is not tightened: the start is refused', async () => {
  await server?.close();
  server = undefined;
  const keys = join(dataDir, 'tuf-keys');
  const [name] = (await readdir(keys)).filter((n) => n.endsWith('.json'));
  assert.ok(name);
  await chmod(join(keys, name), 0o644);
  await assert.rejects(startServer(config()), /FLT_KEY_FILE_UNSAFE_MODE|readable by group or others/);
  await chmod(join(keys, name), 0o600);
  server = await startServer(config());
});
