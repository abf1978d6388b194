/**
 * `flotilla release push --secret / --secret-env` against a real server (docs/cli.md "Secrets"):
 * values come from a file, stdin or the environment, never from the command line itself; only
 * names and commitments are signed; no output shows a value.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { secretCommitment } from '@flotilla/node-kit';
import type { PushResult } from '../src/push/push-release.js';
import { currentTargets } from '../src/signing/image-api.js';
import { json } from './helpers/memory-io.js';
import type { TestServer } from './helpers/server.js';
import { apiClient, loggedInServer, tempDir, writeTree } from './release-fixtures.js';

const PASSPHRASE = 'secrets test passphrase';

void describe('release push with secrets', () => {
  let srv: TestServer;
  let work: string;
  let tree: string;
  const token = `tok-${randomBytes(8).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  before(async () => {
    srv = await loggedInServer();
    work = await tempDir('flt-cli-secrets-');
    tree = join(work, 'app');
    await writeTree(tree, { 'server.js': 'console.log(1)\n' });
    await writeFile(
      join(work, 'api.json'),
      JSON.stringify({ process: { command: ['node', 'server.js'], env: { TOKEN: { $secret: 'TOKEN' } } } }),
    );
    const init = await srv.run(['keys', 'init', '--passphrase-stdin'], { stdin: PASSPHRASE });
    assert.equal(init.code, 0, init.stderr);
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  const push = (version: string, extra: string[], stdin?: string) =>
    srv.run(
      ['release', 'push', tree, '--app', 'api', '--version', version, '--runtime', 'process', ...extra],
      {
        env: { FLOTILLA_KEY_PASSPHRASE: PASSPHRASE, DB_PW: password },
        ...(stdin !== undefined && { stdin }),
      },
    );

  void test('a literal value, a missing value and a second stdin are refused before anything is sent', async () => {
    const literal = await push('0.1', [
      '--config-file',
      join(work, 'api.json'),
      '--secret',
      'TOKEN=plain-text-value',
    ]);
    assert.notEqual(literal.code, 0);
    assert.match(literal.stderr, /never literally/);
    assert.ok(!literal.stderr.includes('plain-text-value'));
    const missing = await push('0.1', ['--config-file', join(work, 'api.json')]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /TOKEN/);
    const unset = await push(
      '0.1',
      ['--config-file', join(work, 'api.json'), '--secret', 'TOKEN=-', '--secret-env', 'NOT_SET_ANYWHERE'],
      'value-from-stdin',
    );
    assert.match(unset.stderr, /not set/);
    const twice = await push(
      '0.1',
      ['--config-file', join(work, 'api.json'), '--secret', 'TOKEN=-', '--passphrase-stdin'],
      PASSPHRASE,
    );
    assert.match(twice.stderr, /stdin is already used/);
  });

  void test('values from stdin and the environment: the signed target holds names and commitments only', async () => {
    const res = await push(
      '1.0.0',
      [
        '--config-file',
        join(work, 'api.json'),
        '--secret',
        'TOKEN=-',
        '--secret-env',
        'DB_PASSWORD=DB_PW',
        '--json',
      ],
      `${token}\n`,
    );
    assert.equal(res.code, 0, res.stderr);
    const out = json<PushResult>(res);
    assert.deepEqual(
      out.release.secrets?.map((s) => [s.name, s.stored]),
      [
        ['TOKEN', true],
        ['DB_PASSWORD', true],
      ],
    );
    const targets = await currentTargets(await apiClient(srv));
    const custom = targets!.signed.targets[out.targetPath]!.custom as {
      config: { process: { env: Record<string, unknown> } };
      secrets: Record<string, string>;
    };
    // --secret-env of a name the config does not use becomes an env var of the same name.
    assert.deepEqual(custom.config.process.env, {
      TOKEN: { $secret: 'TOKEN' },
      DB_PASSWORD: { $secret: 'DB_PASSWORD' },
    });
    assert.deepEqual(Object.keys(custom.secrets).sort(), ['DB_PASSWORD', 'TOKEN']);
    assert.notEqual(custom.secrets.TOKEN, secretCommitment('TOKEN', { value: token, nonce: '0'.repeat(64) }));
    const human = await srv.run(['release', 'show', 'api@1.0.0'], {});
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /secrets\s+TOKEN \(stored\), DB_PASSWORD \(stored\)/);
    for (const r of [res, human])
      for (const value of [token, password])
        assert.ok(!r.stdout.includes(value) && !r.stderr.includes(value), 'an output shows a secret value');
    const targetsText = JSON.stringify(targets!.toJSON());
    assert.ok(!targetsText.includes(token) && !targetsText.includes(password));
  });

  void test('reveal-secret prints the value alone, for an admin', async () => {
    const r = await srv.run(['release', 'reveal-secret', 'api@1.0.0', 'TOKEN'], {});
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${token}\n`);
    const none = await srv.run(['release', 'reveal-secret', 'api@1.0.0', 'NOPE'], {});
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /FLT_SECRET_MISSING|no stored secret/);
  });
});
