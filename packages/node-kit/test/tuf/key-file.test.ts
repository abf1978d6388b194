import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  generateEd25519,
  readKeyFile,
  signMetadata,
  newTargets,
  writeKeyFile,
  newRoot,
  tufKeyFromPublicKey,
} from '../../src/index.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-keyfile-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void test('an encrypted key file round-trips with the right passphrase and is written 0600', () =>
  withDir(async (dir) => {
    const pair = generateEd25519();
    const path = join(dir, 'keys', 'targets.json');
    const written = await writeKeyFile(
      path,
      { role: 'targets', privateKeyPem: pair.privateKeyPem },
      { passphrase: 'correct horse' },
    );
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'keys'))).mode & 0o777, 0o700);
    const text = await readFile(path, 'utf8');
    assert.ok(!text.includes('PRIVATE KEY'), 'the private key is not stored in clear');
    const loaded = await readKeyFile(path, { passphrase: 'correct horse' });
    assert.equal(loaded.privateKeyPem, pair.privateKeyPem);
    assert.equal(loaded.publicKey, pair.publicKey);
    assert.equal(loaded.keyId, written.keyId);
    assert.equal(loaded.keyId, tufKeyFromPublicKey(pair.publicKey).keyID);
  }));

void test('a wrong or missing passphrase is refused with its own code', () =>
  withDir(async (dir) => {
    const path = join(dir, 'root.json');
    await writeKeyFile(
      path,
      { role: 'root', privateKeyPem: generateEd25519().privateKeyPem },
      { passphrase: 'right' },
    );
    await assert.rejects(readKeyFile(path, { passphrase: 'wrong' }), { code: 'FLT_KEY_PASSPHRASE_WRONG' });
    await assert.rejects(readKeyFile(path), { code: 'FLT_KEY_PASSPHRASE_REQUIRED' });
  }));

void test('a key file readable by group or others is refused', () =>
  withDir(async (dir) => {
    const path = join(dir, 'root.json');
    await writeKeyFile(path, { role: 'root', privateKeyPem: generateEd25519().privateKeyPem });
    await chmod(path, 0o640);
    await assert.rejects(readKeyFile(path), { code: 'FLT_KEY_FILE_UNSAFE_MODE' });
    await chmod(path, 0o604);
    await assert.rejects(readKeyFile(path), { code: 'FLT_KEY_FILE_UNSAFE_MODE' });
    await chmod(path, 0o600);
    assert.equal((await readKeyFile(path)).role, 'root');
  }));

void test('an existing key is never overwritten', () =>
  withDir(async (dir) => {
    const path = join(dir, 'root.json');
    const first = await writeKeyFile(path, { role: 'root', privateKeyPem: generateEd25519().privateKeyPem });
    await assert.rejects(
      writeKeyFile(path, { role: 'root', privateKeyPem: generateEd25519().privateKeyPem }),
      { code: 'FLT_CONFLICT' },
    );
    assert.equal((await readKeyFile(path)).keyId, first.keyId);
  }));

void test('tampering with the recorded role or public key of an encrypted key is detected', () =>
  withDir(async (dir) => {
    const path = join(dir, 'targets.json');
    await writeKeyFile(
      path,
      { role: 'targets', privateKeyPem: generateEd25519().privateKeyPem },
      { passphrase: 'pw' },
    );
    const body = JSON.parse(await readFile(path, 'utf8'));
    body.role = 'root';
    await writeFile(path, JSON.stringify(body), { mode: 0o600 });
    await assert.rejects(readKeyFile(path, { passphrase: 'pw' }), { code: 'FLT_KEY_PASSPHRASE_WRONG' });
  }));

void test('a plain key whose public key was swapped, garbage, symlinks and missing files are refused', () =>
  withDir(async (dir) => {
    const path = join(dir, 'root.json');
    await writeKeyFile(path, { role: 'root', privateKeyPem: generateEd25519().privateKeyPem });
    const body = JSON.parse(await readFile(path, 'utf8'));
    body.publicKey = generateEd25519().publicKey;
    const swapped = join(dir, 'swapped.json');
    await writeFile(swapped, JSON.stringify(body), { mode: 0o600 });
    await assert.rejects(readKeyFile(swapped), { code: 'FLT_KEY_FILE_INVALID' });
    const garbage = join(dir, 'garbage.json');
    await writeFile(garbage, '{"format":"nope"', { mode: 0o600 });
    await assert.rejects(readKeyFile(garbage), { code: 'FLT_KEY_FILE_INVALID' });
    const link = join(dir, 'link.json');
    await symlink(path, link);
    await assert.rejects(readKeyFile(link), { code: 'FLT_KEY_FILE_INVALID' });
    await assert.rejects(readKeyFile(join(dir, 'absent.json')), { code: 'FLT_NOT_FOUND' });
  }));

void test('a loaded key signs metadata that verifies under a root naming it', () =>
  withDir(async (dir) => {
    const path = join(dir, 'targets.json');
    const pair = generateEd25519();
    await writeKeyFile(path, { role: 'targets', privateKeyPem: pair.privateKeyPem }, { passphrase: 'pw' });
    const { signer } = await readKeyFile(path, { passphrase: 'pw' });
    const one = { keys: [signer.key], threshold: 1 };
    const root = newRoot({
      version: 1,
      expires: new Date(Date.now() + 86_400_000),
      roles: { root: one, targets: one, snapshot: one, timestamp: one },
    });
    const targets = newTargets({ version: 1, expires: new Date(Date.now() + 86_400_000) });
    await signMetadata(targets, [signer]);
    root.verifyDelegate('targets', targets);
  }));
