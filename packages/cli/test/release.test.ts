import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError, runtimeConfigProblems } from '@flotilla/protocol';
import { readReleaseTarget, roleKeysOf, verifySignedBy } from '@flotilla/node-kit';
import type { Release, ReleaseDiff, ReleaseList } from '@flotilla/protocol';
import type { PushResult } from '../src/push/push-release.js';
import { currentRoot, currentTargets } from '../src/signing/image-api.js';
import { json } from './helpers/memory-io.js';
import type { TestServer } from './helpers/server.js';
import { apiClient, loggedInServer, randomFiles, tempDir, writeTree } from './release-fixtures.js';

const PASSPHRASE = 'release test passphrase';
const env = { FLOTILLA_KEY_PASSPHRASE: PASSPHRASE };

void describe('flotilla release against a real server', () => {
  let srv: TestServer;
  let work: string;
  let tree: string;
  before(async () => {
    srv = await loggedInServer();
    work = await tempDir('flt-cli-release-');
    tree = join(work, 'site');
    // 20 files of 100 KiB: changing one is 5% of the tree.
    await writeTree(tree, { ...randomFiles(20, 100 * 1024), 'index.html': '<h1>v1</h1>\n' });
    const init = await srv.run(['keys', 'init', '--passphrase-stdin'], { stdin: PASSPHRASE });
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  const push = (version: string, extra: string[] = [], options: { env?: Record<string, string> } = {}) =>
    srv.run(['release', 'push', tree, '--app', 'web', '--version', version, '--json', ...extra], {
      env: options.env ?? env,
    });

  void test('the first push uploads the whole tree and signs targets naming the release', async () => {
    const res = await push('1.3.0');
    assert.equal(res.code, 0, res.stderr);
    const out = json<PushResult>(res);
    assert.equal(out.release.app, 'web');
    assert.equal(out.release.signed, true);
    assert.equal(out.tree.files, 21);
    assert.equal(out.upload.uploadedBytes, out.upload.bytes);
    assert.ok(out.upload.wireBytes > 0);

    const client = await apiClient(srv);
    const root = await currentRoot(client);
    const targets = await currentTargets(client);
    assert.ok(targets);
    assert.equal(targets.signed.version, out.targetsVersion);
    // Signed by the offline targets key the root names, which lives in the CLI's keys dir only.
    verifySignedBy(root, 'targets', targets);
    assert.deepEqual(
      Object.keys(targets.signatures),
      roleKeysOf(root.signed, 'targets').keys.map((k) => k.keyID),
    );
    const target = targets.signed.targets[out.targetPath];
    assert.ok(target, `targets names ${out.targetPath}`);
    const read = readReleaseTarget(target);
    assert.equal(read.sha256, out.release.rootObject);
    assert.deepEqual(read.custom, {
      app: 'web',
      version: '1.3.0',
      runtime: 'files',
      rootObject: out.release.rootObject,
    });
  });

  void test('a second version sharing 95% of the tree uploads about 5%', async () => {
    await writeFile(join(tree, 'data', 'file-07.bin'), randomBytes(100 * 1024));
    await writeFile(join(tree, 'index.html'), '<h1>v2</h1>\n');
    const out = json<PushResult>(await push('1.4.0'));
    const share = out.upload.uploadedBytes / out.upload.bytes;
    assert.ok(share > 0.03 && share < 0.1, `uploaded ${(share * 100).toFixed(1)}% of the tree`);
    assert.ok(out.upload.dedupRatio > 0.9);
    assert.equal(out.targetsVersion, 2);
    const targets = await currentTargets(await apiClient(srv));
    assert.deepEqual(
      Object.keys(targets?.signed.targets ?? {}).sort(),
      [`web/1.3.0/${(await showRelease('1.3.0')).rootObject}`, out.targetPath].sort(),
    );
  });

  const showRelease = async (version: string) =>
    json<Release>(await srv.run(['release', 'show', `web@${version}`, '--json']));

  void test('pushing the same tree again uploads and signs nothing; other content under that version is refused', async () => {
    const again = json<PushResult>(await push('1.4.0'));
    assert.equal(again.upload.uploadedObjects, 0);
    assert.equal(again.targetsVersion, 2, 'targets not re-signed');
    await writeFile(join(tree, 'index.html'), '<h1>not 1.4.0</h1>\n');
    const conflict = await push('1.4.0');
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /^error \[FLT_CONFLICT\]/);
    await writeFile(join(tree, 'index.html'), '<h1>v2</h1>\n');
    const targets = await currentTargets(await apiClient(srv));
    assert.equal(targets?.signed.version, 2);
  });

  void test('concurrent pushes both end up in the signed targets', async () => {
    const dirs = [join(work, 'c1'), join(work, 'c2')];
    for (const dir of dirs) await writeTree(dir, randomFiles(2, 4096));
    const results = await Promise.all(
      dirs.map((dir, i) =>
        srv.run(['release', 'push', dir, '--app', 'conc', '--version', `1.${i}`, '--json'], { env }),
      ),
    );
    for (const res of results) assert.equal(res.code, 0, res.stderr);
    const targets = await currentTargets(await apiClient(srv));
    for (const res of results) assert.ok(targets?.signed.targets[json<PushResult>(res).targetPath]);
  });

  void test('ls, show and diff', async () => {
    const list = json<ReleaseList>(await srv.run(['release', 'ls', '--app', 'web', '--json']));
    assert.deepEqual(list.items.map((r) => r.version).sort(), ['1.3.0', '1.4.0']);
    assert.ok(
      json<ReleaseList>(await srv.run(['release', 'ls', '--json'])).items.some((r) => r.app === 'conc'),
    );
    const human = await srv.run(['release', 'ls']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^APP\s+VERSION\s+RUNTIME/);
    assert.match(human.stdout, /web\s+1\.4\.0\s+files\s+21\s+/);

    const shown = await showRelease('1.4.0');
    assert.equal(shown.signed, true);
    assert.equal(shown.files, 21);

    const diff = json<ReleaseDiff>(await srv.run(['release', 'diff', 'web@1.3.0', 'web@1.4.0', '--json']));
    assert.deepEqual(diff.modified.map((m) => m.path).sort(), ['data/file-07.bin', 'index.html']);
    assert.deepEqual(diff.added, []);
    assert.deepEqual(diff.removed, []);
    const text = await srv.run(['release', 'diff', 'web@1.3.0', 'web@1.4.0']);
    assert.match(text.stdout, /modified\s+data\/file-07\.bin\s+100\.0 KiB\s+100\.0 KiB/);
    assert.match(text.stdout, /0 added .*, 0 removed .*, 2 modified/);
  });

  void test('a process release records its entrypoint in the config and the signed target', async () => {
    const config = join(work, 'api.json');
    await writeFile(config, JSON.stringify({ process: { env: { PORT: '8080' } } }));
    const res = await push('2.0.0', [
      '--runtime',
      'process',
      '--entrypoint',
      './bin/api',
      'serve',
      '--config-file',
      config,
    ]);
    assert.equal(res.code, 0, res.stderr);
    const out = json<PushResult>(res);
    const expected = { process: { env: { PORT: '8080' }, command: ['./bin/api', 'serve'] } };
    assert.deepEqual(out.release.config, expected);
    const targets = await currentTargets(await apiClient(srv));
    const target = targets?.signed.targets[out.targetPath];
    assert.ok(target);
    assert.deepEqual(readReleaseTarget(target).custom.config, expected);
  });

  void test('bad input fails with a clear code, exit 1, and creates no release', async () => {
    const before = json<ReleaseList>(await srv.run(['release', 'ls', '--json'])).items.length;
    const deepConfig = join(work, 'deep.json');
    await writeFile(deepConfig, `{"x":${'{"k":'.repeat(5000)}1${'}'.repeat(5000)}}`);
    const cases: { argv: string[]; env?: Record<string, string>; code: RegExp }[] = [
      {
        argv: ['release', 'push', join(work, 'nope'), '--app', 'web', '--version', '9.0.0'],
        code: /^error \[FLT_NOT_FOUND\]: no such directory/,
      },
      {
        argv: ['release', 'push', tree, '--app', 'web', '--version', '../1'],
        code: /^error \[FLT_VALIDATION\]: invalid version/,
      },
      {
        argv: ['release', 'push', tree, '--app', 'a/b', '--version', '1'],
        code: /^error \[FLT_VALIDATION\]: invalid app name/,
      },
      {
        argv: ['release', 'push', tree, '--app', 'web', '--version', '9.0.1'],
        env: { FLOTILLA_KEY_PASSPHRASE: 'not the passphrase' },
        code: /^error \[FLT_KEY_PASSPHRASE_WRONG\]/,
      },
      {
        argv: ['release', 'push', tree, '--app', 'web', '--version', '9.0.2', '--keys-dir', work],
        code: /^error \[FLT_TUF_KEY_MISMATCH\]: .*needs 1 of its targets keys/,
      },
      {
        argv: ['release', 'push', tree, '--app', 'web', '--version', '9.0.3', '--entrypoint', './x'],
        code: /^error \[FLT_VALIDATION\]: --entrypoint is for --runtime process/,
      },
      {
        argv: [
          'release',
          'push',
          tree,
          '--app',
          'web',
          '--version',
          '9.0.4',
          '--config-file',
          join(work, 'site', 'index.html'),
        ],
        code: /^error \[FLT_BAD_JSON\]/,
      },
      {
        argv: ['release', 'push', tree, '--app', 'web', '--version', '9.0.5', '--config-file', deepConfig],
        code: /^error \[FLT_JSON_TOO_DEEP\]: config file .* nests .* more than 64 deep/,
      },
      { argv: ['release', 'show', 'web'], code: /^error \[FLT_VALIDATION\]: "web" is not a release/ },
      { argv: ['release', 'show', 'web@7.7.7'], code: /^error \[FLT_NOT_FOUND\]/ },
      {
        argv: ['release', 'diff', 'web@1.3.0', 'api@1.4.0'],
        code: /^error \[FLT_VALIDATION\]: both releases/,
      },
    ];
    for (const c of cases) {
      const res = await srv.run(c.argv, { env: c.env ?? env });
      assert.equal(res.code, 1, `${c.argv.join(' ')}: ${res.stderr}`);
      assert.match(res.stderr, c.code, c.argv.join(' '));
    }
    assert.equal(json<ReleaseList>(await srv.run(['release', 'ls', '--json'])).items.length, before);
    // Without a version the push is a usage error, and nothing is created.
    const noVersion = await srv.run(['release', 'push', tree, '--app', 'web']);
    assert.equal(noVersion.code, 2);
    assert.match(noVersion.stderr, /--version <version>/);
    const runtime = await srv.run([
      'release',
      'push',
      tree,
      '--app',
      'web',
      '--version',
      '9',
      '--runtime',
      'lxc',
    ]);
    assert.equal(runtime.code, 2);
    // A docker release needs its configuration (--compose): refused before anything is uploaded.
    const docker = await srv.run([
      'release',
      'push',
      tree,
      '--app',
      'web',
      '--version',
      '9',
      '--runtime',
      'docker',
    ]);
    assert.equal(docker.code, 1);
    assert.match(docker.stderr, /FLT_VALIDATION/);
  });

  void test('a runtime config with unknown keys or wrong types is refused before anything is uploaded or signed', async () => {
    const client = await apiClient(srv);
    const targetsBefore = (await currentTargets(client))?.signed.version;
    const releasesBefore = json<ReleaseList>(await srv.run(['release', 'ls', '--json'])).items.length;
    const bad = join(work, 'bad-files.json');
    await writeFile(bad, JSON.stringify({ files: { pathh: '/srv/web', path: 3 } }));
    const fresh = join(work, 'fresh-tree');
    await writeTree(fresh, { 'never-uploaded.txt': randomBytes(64).toString('hex') });
    const res = await srv.run(
      ['release', 'push', fresh, '--app', 'cfg', '--version', '1.0.0', '--config-file', bad],
      { env },
    );
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /^error \[FLT_VALIDATION\]: invalid files runtime configuration/);
    // Every problem is listed, not only the first.
    assert.match(res.stderr, /files\.pathh: unknown key \(allowed: path, /);
    assert.match(res.stderr, /files\.path: expected string \(got 3\)/);
    const procBad = join(work, 'bad-process.json');
    await writeFile(procBad, JSON.stringify({ process: { restart: { policy: 'sometimes' } } }));
    const proc = await srv.run(
      [
        'release',
        'push',
        fresh,
        '--app',
        'cfg',
        '--version',
        '1.0.1',
        '--runtime',
        'process',
        '--config-file',
        procBad,
      ],
      { env },
    );
    assert.equal(proc.code, 1);
    assert.match(proc.stderr, /process\.command: required/);
    assert.match(proc.stderr, /process\.restart\.policy: must be one of always, on-failure, never/);
    // Nothing reached the server: no object of the tree, no release, no new targets.
    const { buildTree, MemoryStore } = await import('@flotilla/store');
    const built = await buildTree(fresh, { sink: new MemoryStore() });
    const missing = await client.send('POST', '/api/v1/objects/missing', { body: { ids: [built.root] } });
    assert.deepEqual((missing.body as { missing: string[] }).missing, [built.root]);
    assert.equal(json<ReleaseList>(await srv.run(['release', 'ls', '--json'])).items.length, releasesBefore);
    assert.equal((await currentTargets(client))?.signed.version, targetsBefore);
  });

  void test('the server refuses a release whose runtime config does not match its runtime, listing every problem', async () => {
    const client = await apiClient(srv);
    const shown = await showRelease('1.4.0');
    const refused = await client
      .send('POST', '/api/v1/releases', {
        body: {
          app: 'web',
          version: '9.9.9',
          runtime: 'files',
          rootObject: shown.rootObject,
          config: { files: { pathh: '/srv/web', postInstall: 'systemctl restart web' } },
        },
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    assert.ok(refused instanceof FlotillaError, String(refused));
    assert.equal(refused.code, 'FLT_VALIDATION');
    assert.deepEqual((refused.details as { problems: string[] }).problems, [
      'files.pathh: unknown key (allowed: path, postInstall, postInstallTimeoutMs, health)',
      'files.postInstall: expected array (got "systemctl restart web")',
    ]);
    await assert.rejects(client.send('GET', '/api/v1/releases/web/9.9.9'), { code: 'FLT_NOT_FOUND' });
  });

  void test('a plain push (no --config-file) makes a files release agents accept: the default config is valid', async () => {
    const res = await push('1.4.1');
    assert.equal(res.code, 0, res.stderr);
    const out = json<PushResult>(res);
    assert.deepEqual(out.release.config, {});
    assert.deepEqual(runtimeConfigProblems('files', out.release.config), []);
  });

  void test('a terminal sees progress on stderr; --json keeps stdout pure', async () => {
    const { cli } = await import('./helpers/memory-io.js');
    await writeFile(join(tree, 'index.html'), '<h1>v3</h1>\n');
    const res = await cli(['release', 'push', tree, '--app', 'web', '--version', '1.5.0'], {
      env: { ...env, FLOTILLA_CONFIG_DIR: srv.configDir },
      tty: true,
    });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /read \(\d+ chunks, \d+ objects\), .* uploaded .*on the wire\), dedup \d+\.\d%/);
    assert.match(res.stdout, /pushed web@1\.5\.0 and signed targets v\d+/);
  });
});
