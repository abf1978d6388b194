/**
 * Secrets in runtime config, end to end through real processes (docs/security.md "Secrets in
 * runtime config"): a release pushed by the CLI with a secret environment variable; the image
 * repository's metadata, every API answer, the CLI's output and both data dirs never hold the
 * value; the assigned agent's process gets it in its environment; a second device is given no
 * ciphertext and cannot open the first one's; a value the server substitutes is refused by the
 * agent (FLT_SECRET_MISMATCH) and the app stays on the old release; only an admin can reveal a
 * value, and every reveal is audited.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCipheriv, createPrivateKey, randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isFlotillaError } from '@flotilla/protocol';
import { openSealedSecret } from '@flotilla/node-kit';
import { ADMIN_PASSWORD, Api, Cluster, cliBin, waitFor } from './harness.js';

interface DeviceApp {
  app: string;
  desired: string | null;
  current: string | null;
  phase: string | null;
  error: { code: string; message: string } | null;
}
interface PushResult {
  targetPath: string;
  release: { secrets?: { name: string; commitment: string; stored: boolean }[] };
}
interface TargetsFile {
  signed: { targets: Record<string, { custom: Record<string, unknown> }> };
}

const APP = 'vault';

/** Every file under `dir` (recursively), as bytes. */
async function allFiles(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path, await readFile(path).catch(() => Buffer.alloc(0)));
  }
  return out;
}

void describe('a secret environment variable, sealed to the one device it is deployed to', () => {
  const cluster = new Cluster();
  let api: Api;
  let url: string;
  let serverData: string;
  let configDir: string;
  let keysDir: string;
  let work: string;
  let serverProc: { output: () => string };
  const agents = new Map<string, { id: string; dir: string; output: () => string }>();
  const apiKey = `sk-live-${randomBytes(12).toString('hex')}`;
  const dbPassword = `pw-${randomBytes(12).toString('hex')}`;
  const forged = `forged-${randomBytes(12).toString('hex')}`;
  let v1: PushResult;
  /** Every CLI output, checked at the end. */
  const outputs: string[] = [];

  function cli(args: string[], env: Record<string, string> = {}) {
    const r = spawnSync(process.execPath, [cliBin, ...args], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir, ...env },
      encoding: 'utf8',
      input: '',
    });
    outputs.push(r.stdout, r.stderr);
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  async function writeRelease(version: string): Promise<void> {
    // The app records the secrets it was started with in its data dir, and which release it is.
    await mkdir(join(work, 'src'), { recursive: true });
    await writeFile(join(work, 'src', 'VERSION'), `${version}\n`);
    await writeFile(
      join(work, 'config.json'),
      JSON.stringify({
        process: {
          command: [
            '/bin/sh',
            '-c',
            'printf %s "$API_KEY" > "$FLOTILLA_APP_DATA/api-key"; printf %s "$DB_PASSWORD" > "$FLOTILLA_APP_DATA/db-password"; printf %s "$FLOTILLA_RELEASE" > "$FLOTILLA_APP_DATA/release"; exec sleep 3600',
          ],
          env: { LOG_LEVEL: 'info', API_KEY: { $secret: 'API_KEY' } },
        },
      }),
    );
  }

  function push(version: string, apiKeyFile: string, password: string): PushResult {
    const r = cli(
      [
        'release',
        'push',
        join(work, 'src'),
        '--app',
        APP,
        '--version',
        version,
        '--runtime',
        'process',
        '--config-file',
        join(work, 'config.json'),
        '--secret',
        `API_KEY=@${apiKeyFile}`,
        '--secret-env',
        'DB_PASSWORD=E2E_DB_PASSWORD',
        '--keys-dir',
        keysDir,
        '--json',
      ],
      { E2E_DB_PASSWORD: password },
    );
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as PushResult;
  }

  async function appState(deviceId: string): Promise<DeviceApp | undefined> {
    const r = await api.call<{ items: DeviceApp[] }>('GET', `/api/v1/devices/${deviceId}/apps`);
    return r.body.items.find((a) => a.app === APP);
  }

  async function settled(deviceId: string, targetPath: string): Promise<DeviceApp> {
    return waitFor(
      `${APP} settled at ${targetPath} on ${deviceId}`,
      async () => {
        const a = await appState(deviceId);
        if (a?.desired !== targetPath) return null;
        return a.phase === 'committed' || a.phase === 'failed' || a.phase === 'rolled-back' ? a : null;
      },
      90_000,
    );
  }

  async function directorTargets(deviceId: string): Promise<TargetsFile> {
    const r = await fetch(`${url}/tuf/director/${deviceId}/targets.json`, {
      headers: { authorization: `Bearer ${api.bearer}` },
    });
    if (r.status === 404) {
      // Consistent snapshots: the newest version is named by the snapshot.
      const snap = (await (
        await fetch(`${url}/tuf/director/${deviceId}/timestamp.json`, {
          headers: { authorization: `Bearer ${api.bearer}` },
        })
      ).json()) as { signed: { meta: Record<string, { version: number }> } };
      const snapshotVersion = snap.signed.meta['snapshot.json']!.version;
      const snapshot = (await (
        await fetch(`${url}/tuf/director/${deviceId}/${snapshotVersion}.snapshot.json`, {
          headers: { authorization: `Bearer ${api.bearer}` },
        })
      ).json()) as { signed: { meta: Record<string, { version: number }> } };
      const v = snapshot.signed.meta['targets.json']!.version;
      const t = await fetch(`${url}/tuf/director/${deviceId}/${v}.targets.json`, {
        headers: { authorization: `Bearer ${api.bearer}` },
      });
      assert.equal(t.status, 200);
      return (await t.json()) as TargetsFile;
    }
    return (await r.json()) as TargetsFile;
  }

  before(async () => {
    const server = await cluster.startServer();
    url = server.url;
    serverData = server.dataDir;
    serverProc = server.proc;
    api = await Api.login(url);
    configDir = await cluster.tempDir('flt-cli-');
    keysDir = join(configDir, 'keys');
    work = await cluster.tempDir('flt-sec-');
    const login = spawnSync(
      process.execPath,
      [cliBin, 'login', '--server', url, '--user', 'admin', '--password-stdin'],
      {
        input: `${ADMIN_PASSWORD}\n`,
        env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
        encoding: 'utf8',
      },
    );
    assert.equal(login.status, 0, login.stderr);
    const key = await api.call<{ secret: string }>('POST', '/api/v1/registration-keys', {
      name: 'sec',
      tags: ['sec'],
      autoAccept: true,
    });
    const started = new Map<string, { dir: string; output: () => string }>();
    for (const name of ['assigned', 'bystander']) {
      const a = await cluster.startAgent({
        server: url,
        registrationKey: key.body.secret,
        facts: { name },
      });
      started.set(name, { dir: a.dataDir, output: a.proc.output });
    }
    await waitFor(
      'two agents enrolled',
      async () => {
        const r = await api.call<{ items: { id: string; facts: Record<string, unknown> }[] }>(
          'GET',
          `/api/v1/devices?filter=${encodeURIComponent('tags==sec;status==accepted')}`,
        );
        for (const d of r.body.items) {
          const s = started.get(String(d.facts.name));
          if (s) agents.set(String(d.facts.name), { id: d.id, ...s });
        }
        return agents.size === 2;
      },
      60_000,
    );
    const init = cli(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]);
    assert.equal(init.code, 0, init.stderr);
  });
  after(() => cluster.cleanup());

  void test('pushed with --secret and --secret-env: only names and commitments are signed and shown', async () => {
    await writeRelease('1.0.0');
    await writeFile(join(work, 'api-key.txt'), `${apiKey}\n`);
    v1 = push('1.0.0', join(work, 'api-key.txt'), dbPassword);
    assert.deepEqual(
      v1.release.secrets?.map((s) => [s.name, s.stored]),
      [
        ['API_KEY', true],
        ['DB_PASSWORD', true],
      ],
    );
    // The image repository's targets, every version as served (`N.targets.json`).
    const targetsFiles = (await readdir(join(serverData, 'tuf', 'image'))).filter((f) =>
      f.endsWith('.targets.json'),
    );
    assert.ok(targetsFiles.length > 0);
    for (const f of targetsFiles) {
      const text = await readFile(join(serverData, 'tuf', 'image', f), 'utf8');
      assert.ok(!text.includes(apiKey) && !text.includes(dbPassword), `${f} holds a secret value`);
    }
    const latest = targetsFiles.sort((a, b) => parseInt(b) - parseInt(a))[0]!;
    const signed = JSON.parse(
      await readFile(join(serverData, 'tuf', 'image', latest), 'utf8'),
    ) as TargetsFile;
    const custom = signed.signed.targets[v1.targetPath]!.custom;
    assert.deepEqual(Object.keys(custom.secrets as object).sort(), ['API_KEY', 'DB_PASSWORD']);
    assert.deepEqual((custom.config as { process: { env: unknown } }).process.env, {
      LOG_LEVEL: 'info',
      API_KEY: { $secret: 'API_KEY' },
      DB_PASSWORD: { $secret: 'DB_PASSWORD' },
    });
  });

  void test('deployed to one device: its process gets the values; the other device gets no ciphertext and cannot open it', async () => {
    const assigned = agents.get('assigned')!;
    const bystander = agents.get('bystander')!;
    const d = cli(['deploy', `${APP}@1.0.0`, '--device', assigned.id, '--json']);
    assert.equal(d.code, 0, d.stderr);
    const state = await settled(assigned.id, v1.targetPath);
    assert.equal(state.phase, 'committed', JSON.stringify(state));
    const data = join(assigned.dir, 'apps', APP, 'data');
    await waitFor('the app wrote what it was given', async () => {
      const release = await readFile(join(data, 'release'), 'utf8').catch(() => '');
      return release === '1.0.0';
    });
    assert.equal(await readFile(join(data, 'api-key'), 'utf8'), apiKey);
    assert.equal(await readFile(join(data, 'db-password'), 'utf8'), dbPassword);

    // The assigned device's director target carries the values sealed to it; the bystander's none.
    const mine = await directorTargets(assigned.id);
    const sealed = mine.signed.targets[v1.targetPath]!.custom.sealedSecrets as Record<string, string>;
    assert.deepEqual(Object.keys(sealed).sort(), ['API_KEY', 'DB_PASSWORD']);
    const theirs = await directorTargets(bystander.id);
    assert.deepEqual(Object.keys(theirs.signed.targets), []);
    // Even with the assigned device's ciphertext in hand, the bystander's key opens nothing.
    const pem = await readFile(join(bystander.dir, 'identity', 'device.key'), 'utf8');
    const seed = Buffer.from(createPrivateKey(pem).export({ format: 'jwk' }).d!, 'base64url');
    for (const deviceId of [bystander.id, assigned.id]) {
      await assert.rejects(
        openSealedSecret(seed, { deviceId, targetPath: v1.targetPath, name: 'API_KEY' }, sealed.API_KEY!),
        (e: unknown) => isFlotillaError(e) && e.code === 'FLT_SECRET_SEALED_INVALID',
      );
    }
  });

  void test('a value the server substitutes is refused by the agent; the app stays on the old release', async () => {
    const assigned = agents.get('assigned')!;
    await writeRelease('2.0.0');
    await writeFile(join(work, 'api-key-2.txt'), `${apiKey}-2\n`);
    const v2 = push('2.0.0', join(work, 'api-key-2.txt'), dbPassword);
    // A compromised server: it holds the secrets key and the database, and stores another value
    // (with a nonce of its own) in place of the one the operator committed to.
    const key = Buffer.from((await readFile(join(serverData, 'secrets.key'), 'utf8')).trim(), 'base64');
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(`flotilla-release-secret-v1\n${APP}\n2.0.0\nAPI_KEY`));
    const ct = Buffer.concat([
      cipher.update(JSON.stringify({ value: forged, nonce: randomBytes(32).toString('hex') })),
      cipher.final(),
    ]);
    const db = new Database(join(serverData, 'flotilla.db'));
    try {
      const changed = db
        .prepare(
          "UPDATE release_secrets SET ciphertext = ? WHERE app = ? AND version = '2.0.0' AND name = 'API_KEY'",
        )
        .run(Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url'), APP);
      assert.equal(changed.changes, 1);
    } finally {
      db.close();
    }
    assert.equal(cli(['deploy', `${APP}@2.0.0`, '--device', assigned.id]).code, 0);
    const state = await settled(assigned.id, v2.targetPath);
    assert.equal(state.phase, 'failed', JSON.stringify(state));
    assert.equal(state.error?.code, 'FLT_SECRET_MISMATCH');
    assert.equal(state.current, v1.targetPath, 'the app stays on the old release');
    const data = join(assigned.dir, 'apps', APP, 'data');
    assert.equal(await readFile(join(data, 'release'), 'utf8'), '1.0.0');
    assert.equal(await readFile(join(data, 'api-key'), 'utf8'), apiKey);
  });

  void test('only an admin reveals a value, and every reveal is audited', async () => {
    const reveal = `/api/v1/releases/${APP}/1.0.0/secrets/API_KEY/reveal`;
    for (const role of ['viewer', 'deployer']) {
      const password = `pw-${role}-0123456789`;
      const created = await api.call('POST', '/api/v1/users', { username: role, password, role });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const as = await Api.login(url, role, password);
      const r = await as.call<{ error: { code: string } }>('POST', reveal);
      assert.equal(r.status, 403, `${role} may not reveal`);
      assert.ok(!JSON.stringify(r.body).includes(apiKey));
    }
    const r = await api.call<{ value: string }>('POST', reveal);
    assert.equal(r.status, 200);
    assert.equal(r.body.value, apiKey);
    const audit = await api.call<{ items: { action: string; subjectId: string; details: unknown }[] }>(
      'GET',
      '/api/v1/audit?limit=200',
    );
    const reveals = audit.body.items.filter((e) => e.action === 'release.secret.reveal');
    assert.equal(reveals.length, 1);
    assert.equal(reveals[0]!.subjectId, `${APP}@1.0.0`);
    assert.deepEqual(reveals[0]!.details, { name: 'API_KEY' });
  });

  void test('no API answer, CLI output, log or file on server or devices holds a value', async () => {
    const assigned = agents.get('assigned')!;
    const paths = [
      '/api/v1/releases',
      `/api/v1/releases/${APP}/1.0.0`,
      `/api/v1/releases/${APP}/2.0.0`,
      `/api/v1/deployments/status?app=${APP}&version=1.0.0`,
      `/api/v1/deployments/status?app=${APP}&version=2.0.0`,
      `/api/v1/devices/${assigned.id}/apps`,
      `/api/v1/devices/${assigned.id}`,
      '/api/v1/audit?limit=500',
    ];
    for (const path of paths) {
      const r = await api.call('GET', path);
      const text = JSON.stringify(r.body);
      for (const value of [apiKey, dbPassword, forged])
        assert.ok(!text.includes(value), `GET ${path} shows a secret value`);
    }
    for (const args of [
      ['release', 'show', `${APP}@1.0.0`],
      ['release', 'show', `${APP}@1.0.0`, '--json'],
      ['release', 'ls', '--json'],
      ['deploy', 'status', `${APP}@1.0.0`, '--json'],
      ['devices', 'show', assigned.id, '--json'],
    ]) {
      const r = cli(args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    for (const out of outputs)
      for (const value of [apiKey, dbPassword])
        assert.ok(!out.includes(value), 'a CLI output shows a secret');
    for (const value of [apiKey, dbPassword, forged]) {
      assert.ok(!serverProc.output().includes(value), 'the server logged a secret');
      for (const a of agents.values()) assert.ok(!a.output().includes(value), 'an agent logged a secret');
    }
    // At rest: the server's data dir (database, metadata, key files) and each device's data dir
    // (state.db, metadata, caches, app logs) hold no value; only the app's own output files do.
    const own = join(assigned.dir, 'apps', APP, 'data');
    for (const dir of [serverData, ...[...agents.values()].map((a) => a.dir)]) {
      for (const [path, bytes] of await allFiles(dir)) {
        if (path.startsWith(own)) continue;
        for (const value of [apiKey, `${apiKey}-2`, dbPassword])
          assert.ok(!bytes.includes(value), `${path} holds a secret value`);
      }
    }
  });
});
