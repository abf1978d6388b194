import assert from 'node:assert/strict';
import { chmodSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { publicKeyOfPrivatePem } from '@flotilla/node-kit';
import { openStateDatabase } from '../src/state/db.js';
import { ensurePrivateDir, writeFileAtomic } from '../src/state/files.js';
import { identityKeyPath, loadOrCreateIdentity } from '../src/state/identity.js';
import { LocalState } from '../src/state/local-state.js';
import { MIGRATIONS } from '../src/state/migrations.js';
import { tempDir } from '@flotilla/testkit';

const mode = (path: string) => statSync(path).mode & 0o777;
const noWarnings = (message: string) => assert.fail(`unexpected warning: ${message}`);

void test('the device key is created once with private modes and reloaded unchanged', (t) => {
  const dataDir = join(tempDir(t), 'agent');
  ensurePrivateDir(dataDir);
  const first = loadOrCreateIdentity(dataDir, noWarnings);
  assert.equal(first.created, true);
  const keyPath = identityKeyPath(dataDir);
  assert.equal(mode(keyPath), 0o600);
  assert.equal(mode(join(dataDir, 'identity')), 0o700);
  assert.equal(mode(dataDir), 0o700);
  const pem = readFileSync(keyPath, 'utf8');
  assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(publicKeyOfPrivatePem(pem), first.publicKey);
  assert.deepEqual(readdirSync(join(dataDir, 'identity')), ['device.key'], 'no temp files left behind');

  const second = loadOrCreateIdentity(dataDir, noWarnings);
  assert.equal(second.created, false);
  assert.equal(second.publicKey, first.publicKey);
  assert.equal(readFileSync(keyPath, 'utf8'), pem);
});

void test('a key readable by others is tightened to 0600 with a warning', (t) => {
  const dataDir = tempDir(t);
  loadOrCreateIdentity(dataDir, noWarnings);
  chmodSync(identityKeyPath(dataDir), 0o644);
  const warnings: string[] = [];
  loadOrCreateIdentity(dataDir, (m) => warnings.push(m));
  assert.equal(mode(identityKeyPath(dataDir)), 0o600);
  assert.equal(warnings.length, 1);
});

void test('a damaged key is an FLT_IO error and is never overwritten', (t) => {
  const dataDir = tempDir(t);
  loadOrCreateIdentity(dataDir, noWarnings);
  writeFileSync(identityKeyPath(dataDir), 'not a key');
  assert.throws(
    () => loadOrCreateIdentity(dataDir, noWarnings),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_IO',
  );
  assert.equal(readFileSync(identityKeyPath(dataDir), 'utf8'), 'not a key');
});

void test('a data dir that cannot be created is a clear FLT_IO error', (t) => {
  const blocker = join(tempDir(t), 'a-file');
  writeFileSync(blocker, '');
  assert.throws(
    () => ensurePrivateDir(join(blocker, 'agent')),
    (e: unknown) =>
      e instanceof FlotillaError && e.code === 'FLT_IO' && e.message.includes(join(blocker, 'agent')),
  );
  assert.throws(
    () => ensurePrivateDir(blocker),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_IO',
  );
});

void test('writeFileAtomic replaces content and leaves no temp file on failure', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'f');
  writeFileAtomic(path, 'one', 0o600);
  writeFileAtomic(path, 'two', 0o600);
  assert.equal(readFileSync(path, 'utf8'), 'two');
  assert.throws(
    () => writeFileAtomic(join(dir, 'missing', 'f'), 'x', 0o600),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_IO',
  );
  assert.deepEqual(readdirSync(dir), ['f']);
});

void test('state.db: WAL, migrations applied once, values survive a reopen', (t) => {
  const path = join(tempDir(t), 'state.db');
  const db = openStateDatabase(path);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  const state = new LocalState(db, path);
  assert.equal(state.enrollment(), null);
  state.saveEnrollment({ deviceId: 'dev1', serverUrl: 'http://s', status: 'pending' });
  state.saveStatus('accepted');
  state.saveStateCursor('"3-accepted"', 3);
  state.saveInventoryReport('abc', 1_700_000_000_000);
  db.close();

  const again = openStateDatabase(path);
  const versions = again.prepare('SELECT version FROM schema_migrations').all();
  assert.deepEqual(
    versions,
    MIGRATIONS.map((m) => ({ version: m.version })),
  );
  const reloaded = new LocalState(again, path);
  assert.deepEqual(reloaded.enrollment(), { deviceId: 'dev1', serverUrl: 'http://s', status: 'accepted' });
  assert.deepEqual(reloaded.stateCursor(), { etag: '"3-accepted"', stateVersion: 3 });
  assert.deepEqual(reloaded.lastInventory(), { hash: 'abc', reportedAtMs: 1_700_000_000_000 });
  reloaded.clearEnrollment();
  assert.equal(reloaded.enrollment(), null);
  assert.deepEqual(reloaded.stateCursor(), { etag: null, stateVersion: null });
  again.close();
});

void test('state.db from a newer agent is refused, not downgraded', (t) => {
  const path = join(tempDir(t), 'state.db');
  const later = [
    ...MIGRATIONS,
    { version: MIGRATIONS.length + 1, name: 'future', sql: 'CREATE TABLE future (x INTEGER) STRICT' },
  ];
  openStateDatabase(path, later).close();
  assert.throws(
    () => openStateDatabase(path),
    (e: unknown) =>
      e instanceof FlotillaError && e.code === 'FLT_IO' && /newer than this agent/.test(e.message),
  );
});

void test('a file that is not SQLite is an FLT_IO error', (t) => {
  const path = join(tempDir(t), 'state.db');
  writeFileSync(path, 'this is not a database, just text that is long enough to have a header......');
  assert.throws(
    () => openStateDatabase(path),
    (e: unknown) => e instanceof FlotillaError && e.code === 'FLT_IO',
  );
});
