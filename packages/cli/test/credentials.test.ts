import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isFlotillaError } from '@flotilla/protocol';
import { resolveConfigDir } from '../src/config/paths.js';
import {
  credentialsPath,
  deleteCredentials,
  readCredentials,
  writeCredentials,
} from '../src/config/credentials.js';
import { tempDir } from '@flotilla/testkit';

void test('config dir: flag, then FLOTILLA_CONFIG_DIR, then XDG_CONFIG_HOME, then ~/.config', () => {
  const env = { FLOTILLA_CONFIG_DIR: '/a', XDG_CONFIG_HOME: '/x', HOME: '/home/u' };
  assert.equal(resolveConfigDir({ flag: '/f', env, cwd: '/' }), '/f');
  assert.equal(resolveConfigDir({ env, cwd: '/' }), '/a');
  assert.equal(
    resolveConfigDir({ env: { XDG_CONFIG_HOME: '/x', HOME: '/home/u' }, cwd: '/' }),
    '/x/flotilla',
  );
  assert.equal(resolveConfigDir({ env: { HOME: '/home/u' }, cwd: '/' }), '/home/u/.config/flotilla');
  assert.equal(resolveConfigDir({ flag: 'rel', env, cwd: '/work' }), '/work/rel');
  assert.equal(
    resolveConfigDir({ env: { FLOTILLA_CONFIG_DIR: ' ', HOME: '/h' }, cwd: '/' }),
    '/h/.config/flotilla',
  );
});

void test('credentials are written 0600 in a 0700 directory and read back', async (t) => {
  const dir = join(tempDir(t), 'nested', 'flotilla');
  const creds = {
    server: 'http://127.0.0.1:7070',
    token: 'flt_at_secret',
    username: 'admin',
    tokenId: 'at_1',
  };
  const path = await writeCredentials(dir, creds);
  assert.equal(path, credentialsPath(dir));
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  assert.deepEqual(await readCredentials(dir), creds);
  // Overwriting replaces atomically and leaves no temp files behind.
  await writeCredentials(dir, { ...creds, token: 'flt_at_other' });
  assert.equal((await readCredentials(dir))?.token, 'flt_at_other');
  assert.deepEqual(await readdir(dir), ['credentials.json']);
});

void test('an existing too-open config directory is tightened to 0700', async (t) => {
  const dir = join(tempDir(t), 'open');
  await mkdir(dir, { mode: 0o755 });
  await chmod(dir, 0o755);
  await writeCredentials(dir, { server: 'http://h', token: 't', username: 'u' });
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
});

void test('missing credentials read as null; corrupt ones are a clear config error', async (t) => {
  const dir = tempDir(t);
  assert.equal(await readCredentials(dir), null);
  await writeFile(credentialsPath(dir), '{not json');
  await assert.rejects(readCredentials(dir), (e) => isFlotillaError(e) && e.code === 'FLT_CONFIG_INVALID');
  await writeFile(credentialsPath(dir), JSON.stringify({ server: 'http://h', token: 42 }));
  await assert.rejects(readCredentials(dir), (e) => {
    assert.ok(isFlotillaError(e) && e.code === 'FLT_CONFIG_INVALID');
    const problems = (e.details as { problems: string[] }).problems;
    assert.ok(
      problems.some((p) => p.includes('/token')),
      problems.join('\n'),
    );
    return true;
  });
});

void test('deleteCredentials removes the file and reports whether there was one', async (t) => {
  const dir = tempDir(t);
  await writeCredentials(dir, { server: 'http://h', token: 't', username: 'u' });
  assert.equal(await deleteCredentials(dir), true);
  assert.equal(await deleteCredentials(dir), false);
  await assert.rejects(readFile(credentialsPath(dir)), { code: 'ENOENT' });
});
