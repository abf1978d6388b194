/**
 * A fleet enrolled before its first release, through real processes: the operator ran
 * `flotilla keys init` (the image repository has a root, no timestamp yet) and a real agent enrolls and
 * converges. An empty repository is a normal state: the agent says "no releases yet" at debug level and
 * logs nothing at warn or error about it. The image repository answers nobody without a token.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ADMIN_PASSWORD, Api, Cluster, cliBin, waitFor } from './harness.js';

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function lines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
}

void describe('an agent enrolled before the first release', () => {
  const cluster = new Cluster();
  let url: string;
  let agentOutput: () => string;

  before(async () => {
    const server = await cluster.startServer();
    url = server.url;
    const api = await Api.login(url);
    const configDir = await cluster.tempDir('flt-cli-');
    const env = { ...process.env, FLOTILLA_CONFIG_DIR: configDir };
    const login = spawnSync(
      process.execPath,
      [cliBin, 'login', '--server', url, '--user', 'admin', '--password-stdin'],
      { input: `${ADMIN_PASSWORD}\n`, env, encoding: 'utf8' },
    );
    assert.equal(login.status, 0, login.stderr);
    const init = spawnSync(
      process.execPath,
      [cliBin, 'keys', 'init', '--no-passphrase', '--keys-dir', join(configDir, 'keys')],
      { env, encoding: 'utf8', input: '' },
    );
    assert.equal(init.status, 0, init.stderr);
    // The recommended setup: the agent ships with the image root (read here with an operator token).
    const token = await api.call<{ secret: string }>('POST', '/api/v1/tokens', { name: 'root-reader' });
    const root = await fetch(`${url}/tuf/image/1.root.json`, {
      headers: { authorization: `Bearer ${token.body.secret}` },
    });
    assert.equal(root.status, 200);
    const rootFile = join(configDir, 'image-root.json');
    await writeFile(rootFile, Buffer.from(await root.arrayBuffer()));
    const agentConfig = join(configDir, 'agent.yaml');
    await writeFile(agentConfig, `trustedRootFile: ${JSON.stringify(rootFile)}\n`);
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'empty',
      autoAccept: true,
    });
    const agent = await cluster.startAgent({
      server: url,
      registrationKey: key.body.secret,
      extraArgs: ['--log-level', 'debug', '--config', agentConfig],
    });
    agentOutput = agent.proc.output;
  });
  after(() => cluster.cleanup());

  void test('the agent converges quietly: "no releases yet" at debug, nothing at warn or error', async () => {
    const quiet = await waitFor(
      'the agent to find the image repository empty',
      () => Promise.resolve(lines(agentOutput()).find((l) => /no releases yet/.test(l.msg))),
      60_000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}; the agent said:\n${agentOutput().slice(-6000)}`);
    });
    assert.equal(quiet.level, 20, JSON.stringify(quiet));
    assert.equal(quiet.repository, 'image');
    // The director's root is always taken on first use (docs/updates.md, "Trust anchor"), with a
    // warning of its own; anything else at warn or error would be noise about a normal state.
    const directorTofu = (l: LogLine) =>
      /trust on first use/.test(l.msg) && String(l.url).includes('/tuf/director/');
    const loud = lines(agentOutput()).filter((l) => l.level >= 40 && !directorTofu(l));
    assert.deepEqual(loud, [], 'no warning or error');
  });

  void test('the image repository the agent read answers 401 without a token', async () => {
    for (const file of ['root.json', '1.root.json']) {
      const res = await fetch(`${url}/tuf/image/${file}`);
      assert.equal(res.status, 401, file);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'FLT_UNAUTHENTICATED');
    }
  });
});
