import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { TufStatus } from '@flotilla/protocol';
import { roleKeysOf, verifySignedBy } from '@flotilla/node-kit';
import { currentRoot, currentTargets } from '../src/signing/image-api.js';
import { json } from './helpers/memory-io.js';
import type { TestServer } from './helpers/server.js';
import { apiClient, loggedInServer } from './release-fixtures.js';

const PASSPHRASE = 'correct horse battery staple';

void describe('flotilla keys against a real server', () => {
  let srv: TestServer;
  let keysDir: string;
  before(async () => {
    srv = await loggedInServer();
    keysDir = join(srv.configDir, 'keys');
  });
  after(() => srv.close());

  const keyFiles = async (role: string) =>
    (await readdir(join(keysDir, role)).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  const status = async () =>
    json<TufStatus & { localKeys: unknown[] }>(await srv.run(['keys', 'status', '--json']));

  void test('status before init says the repository has no root', async () => {
    const res = await srv.run(['keys', 'status']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /no root yet: run `flotilla keys init`/);
    assert.equal((await status()).initialized, false);
  });

  void test('init without a passphrase choice is refused and creates nothing', async () => {
    const res = await srv.run(['keys', 'init']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^error \[FLT_KEY_PASSPHRASE_REQUIRED\]: .*--no-passphrase/);
    assert.deepEqual(await keyFiles('root'), []);
    assert.equal((await status()).initialized, false);
  });

  void test('when the server refuses root v1, init removes the keys it created', async () => {
    // A root that has expired by the time it arrives (TUF expiry has whole seconds).
    const res = await srv.run(['keys', 'init', '--no-passphrase', '--expires', '1ms']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^error \[FLT_TUF_FREEZE\]/);
    assert.deepEqual(await keyFiles('root'), []);
    assert.deepEqual(await keyFiles('targets'), []);
    assert.equal((await status()).initialized, false);
  });

  void test('init writes encrypted 0600 key files and the server accepts root v1', async () => {
    const res = await srv.run(['keys', 'init', '--passphrase-stdin', '--expires', '10d', '--json'], {
      stdin: `${PASSPHRASE}\n`,
    });
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { keys: { root: string[]; targets: string[] }; encrypted: boolean };
    assert.equal(out.encrypted, true);
    for (const role of ['root', 'targets'] as const) {
      const files = await keyFiles(role);
      assert.deepEqual(
        files,
        out.keys[role].map((id) => `${id}.json`),
      );
      for (const file of files) assert.equal((await stat(join(keysDir, role, file))).mode & 0o777, 0o600);
    }
    assert.equal((await stat(keysDir)).mode & 0o777, 0o700);

    const root = await currentRoot(await apiClient(srv));
    assert.equal(root.signed.version, 1);
    verifySignedBy(root, 'root', root);
    assert.deepEqual(
      roleKeysOf(root.signed, 'targets').keys.map((k) => k.keyID),
      out.keys.targets,
    );
  });

  void test('a second init is refused and changes nothing', async () => {
    const before = await keyFiles('root');
    const res = await srv.run(['keys', 'init', '--no-passphrase']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^error \[FLT_CONFLICT\]: .*already has an image root/);
    assert.deepEqual(await keyFiles('root'), before);
    const other = await srv.run([
      'keys',
      'init',
      '--no-passphrase',
      '--keys-dir',
      join(srv.configDir, 'other'),
    ]);
    assert.equal(other.code, 1);
    assert.equal((await readdir(srv.configDir)).includes('other'), false);
  });

  void test('status warns about a root that expires soon, with the command that renews it', async () => {
    const res = await srv.run(['keys', 'status']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /root\s+v1/);
    assert.match(res.stdout, /1 of 1 \(threshold 1\)/);
    assert.match(res.stderr, /warning: root v1 expires in \d+d: run `flotilla keys renew --role root`/);
  });

  void test('a wrong passphrase is refused and publishes nothing', async () => {
    const res = await srv.run(['keys', 'renew', '--role', 'root'], {
      env: { FLOTILLA_KEY_PASSPHRASE: 'wrong passphrase' },
    });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^error \[FLT_KEY_PASSPHRASE_WRONG\]/);
    const missing = await srv.run(['keys', 'renew', '--role', 'root']);
    assert.match(missing.stderr, /^error \[FLT_KEY_PASSPHRASE_REQUIRED\]/);
    assert.equal((await status()).root?.version, 1);
  });

  void test('renew re-signs root and targets with a new expiry', async () => {
    const env = { FLOTILLA_KEY_PASSPHRASE: PASSPHRASE };
    const root = await srv.run(['keys', 'renew', '--role', 'root', '--expires', '52w', '--json'], { env });
    assert.equal(root.code, 0, root.stderr);
    assert.equal(JSON.parse(root.stdout).version, 2);
    const targets = await srv.run(['keys', 'renew', '--role', 'targets', '--json'], { env });
    assert.equal(targets.code, 0, targets.stderr);
    assert.equal(JSON.parse(targets.stdout).version, 1);
    const now = await status();
    assert.equal(now.root?.version, 2);
    assert.equal(now.targets?.version, 1);
    assert.deepEqual(now.warnings, []);
  });

  void test('rotating targets publishes a new root and re-signs targets with the new key', async () => {
    const oldKeys = await keyFiles('targets');
    const res = await srv.run(['keys', 'rotate', '--role', 'targets', '--passphrase-stdin', '--json'], {
      stdin: PASSPHRASE,
    });
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { rootVersion: number; targetsVersion: number; keys: string[] };
    assert.equal(out.rootVersion, 3);
    assert.equal(out.targetsVersion, 2);
    const client = await apiClient(srv);
    const root = await currentRoot(client);
    assert.deepEqual(
      roleKeysOf(root.signed, 'targets').keys.map((k) => k.keyID),
      out.keys,
    );
    const targets = await currentTargets(client);
    assert.ok(targets);
    verifySignedBy(root, 'targets', targets);
    assert.deepEqual(Object.keys(targets.signatures), out.keys);
    // The retired key stays on disk but is no longer named, so it is never used again.
    assert.equal((await keyFiles('targets')).length, oldKeys.length + 1);
  });

  void test('rotating root to 2 keys with threshold 2; both then sign every new root', async () => {
    const env = { FLOTILLA_KEY_PASSPHRASE: PASSPHRASE };
    const res = await srv.run(
      ['keys', 'rotate', '--role', 'root', '--keys', '2', '--threshold', '2', '--json'],
      {
        env,
      },
    );
    assert.equal(res.code, 0, res.stderr);
    const client = await apiClient(srv);
    const v4 = await currentRoot(client);
    assert.equal(v4.signed.version, 4);
    assert.equal(roleKeysOf(v4.signed, 'root').threshold, 2);
    const renew = await srv.run(['keys', 'renew', '--role', 'root'], { env });
    assert.equal(renew.code, 0, renew.stderr);
    const v5 = await currentRoot(client);
    assert.equal(Object.keys(v5.signatures).length, 2);

    // Without one of the two root keys, no new root can be signed.
    const [first] = (await currentRoot(client)).signed.roles.root?.keyIDs ?? [];
    await rm(join(keysDir, 'root', `${first}.json`));
    const short = await srv.run(['keys', 'renew', '--role', 'root'], { env });
    assert.equal(short.code, 1);
    assert.match(short.stderr, /^error \[FLT_TUF_KEY_MISMATCH\]: root v5 needs 2 of its root keys/);
  });

  void test("delegate-gateway delegates apps to the server's gateway key; renewals keep it; --remove and --none drop it", async () => {
    const env = { FLOTILLA_KEY_PASSPHRASE: PASSPHRASE };
    const res = await srv.run(['keys', 'delegate-gateway', '--app', 'imgs', '--app', 'tools', '--json'], {
      env,
    });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual((JSON.parse(res.stdout) as { apps: string[] }).apps, ['imgs', 'tools']);
    let gw = (await status()).gateway;
    assert.deepEqual(gw?.apps, ['imgs', 'tools']);
    assert.equal(gw?.keyMatches, true);
    assert.equal((await srv.run(['keys', 'renew', '--role', 'targets'], { env })).code, 0);
    assert.deepEqual((await status()).gateway?.apps, ['imgs', 'tools'], 'a renewal keeps the delegation');
    const human = await srv.run(['keys', 'status']);
    assert.match(human.stdout, /gateway .*delegated: imgs, tools/);
    assert.equal((await srv.run(['keys', 'delegate-gateway', '--remove', 'tools'], { env })).code, 0);
    gw = (await status()).gateway;
    assert.deepEqual(gw?.apps, ['imgs']);
    assert.equal((await srv.run(['keys', 'delegate-gateway', '--none'], { env })).code, 0);
    assert.equal((await status()).gateway, undefined);
    const mixed = await srv.run(['keys', 'delegate-gateway', '--none', '--app', 'x'], { env });
    assert.equal(mixed.code, 2);
    const bad = await srv.run(['keys', 'delegate-gateway', '--app', 'a/b'], { env });
    assert.notEqual(bad.code, 0);
  });

  void test('a key file readable by others is refused before anything is signed', async () => {
    const client = await apiClient(srv);
    const [targetsKey] = roleKeysOf((await currentRoot(client)).signed, 'targets').keys;
    assert.ok(targetsKey);
    const path = join(keysDir, 'targets', `${targetsKey.keyID}.json`);
    const versionBefore = (await status()).targets?.version;
    await chmod(path, 0o644);
    try {
      const res = await srv.run(['keys', 'renew', '--role', 'targets'], {
        env: { FLOTILLA_KEY_PASSPHRASE: PASSPHRASE },
      });
      assert.equal(res.code, 1);
      assert.match(res.stderr, /^error \[FLT_KEY_FILE_UNSAFE_MODE\]: .*chmod 600/);
      assert.equal((await status()).targets?.version, versionBefore);
    } finally {
      await chmod(path, 0o600);
    }
  });

  void test('bad options are usage errors', async () => {
    const role = await srv.run(['keys', 'rotate', '--role', 'snapshot']);
    assert.equal(role.code, 2);
    assert.match(role.stderr, /must be root or targets/);
    const threshold = await srv.run([
      'keys',
      'init',
      '--threshold',
      '3',
      '--root-keys',
      '2',
      '--no-passphrase',
    ]);
    assert.equal(threshold.code, 2);
  });
});
