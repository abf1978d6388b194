/**
 * A `fleet` platform end to end with real processes: a docker-registry holding two versions of an
 * image pushed by skopeo, a `flotilla server --gateway-config …` process converting in-process, a
 * real `flotilla agent` enrolled with the platform's tag, and the CLI. The operator delegates the
 * platform's app to the server's gateway role offline (`keys delegate-gateway`); `images pull`
 * then converts the image, publishes its release tree signed by the gateway role and deploys it;
 * the agent verifies it through the delegation (tuf-js) and installs the tree. v2, with one file
 * changed in place, reaches the agent as a delta: fewer bytes than the changed file. Removing the
 * images withdraws them from the gateway role and from the device.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Image } from '@flotilla/protocol';
import { cli, json } from '../helpers/memory-io.js';
import { adminApiToken } from '../helpers/server.js';
import { tempRoot, until, writeGatewayConfig } from './helpers.js';

const run = promisify(execFile);
const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const bin = fileURLToPath(new URL(`../../src/bin.${ext}`, import.meta.url));
const PASSWORD = 'gateway-fleet-password-1';
const APP = 'cluster-images';

function startProcess(
  args: string[],
  env: NodeJS.ProcessEnv,
  pattern: RegExp | null,
): { child: ChildProcess; ready: Promise<RegExpExecArray | null>; output: () => string } {
  const child = spawn(process.execPath, [...process.execArgv, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const ready = new Promise<RegExpExecArray | null>((resolve, reject) => {
    if (pattern === null) resolve(null);
    const onData = (b: Buffer): void => {
      output += b.toString();
      if (output.length > 4_000_000) output = output.slice(-2_000_000);
      const match = pattern?.exec(output);
      if (match) resolve(match);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code}): ${output}`)));
  });
  ready.catch(() => undefined);
  return { child, ready, output: () => output };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** An OCI layout with one gzip layer holding `files`, under `tag`, written with GNU tar. */
async function writeImage(dir: string, tag: string, files: Record<string, Buffer>): Promise<void> {
  const src = join(dir, 'src');
  const blobs = join(dir, 'layout', 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(src, name, '..'), { recursive: true });
    await writeFile(join(src, name), content, { mode: name.startsWith('bin/') ? 0o755 : 0o644 });
  }
  const tarPath = join(dir, 'layer.tar');
  await run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-C', src, '-cf', tarPath, '.']);
  const tarBytes = await readFile(tarPath);
  await run('gzip', ['-n', tarPath]);
  const blob = await readFile(`${tarPath}.gz`);
  const put = async (bytes: Buffer | string): Promise<{ digest: string; size: number }> => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: Buffer.byteLength(bytes) };
  };
  const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const config = await put(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [sha(tarBytes)] },
    }),
  );
  const layer = await put(blob);
  const manifest = await put(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  );
  await writeFile(join(dir, 'layout', 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'layout', 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
}

interface DeviceApp {
  app: string;
  desired: string | null;
  current: string | null;
  phase: string | null;
  bytesFetched: number | null;
}

void test('fleet platform: an image reaches a real agent signed by the delegated gateway role, its next version as a delta', async (t) => {
  const root = await tempRoot('flt-gw-fleet-');
  const children: (ChildProcess | undefined)[] = [];
  t.after(async () => {
    for (const child of children.reverse()) await stop(child);
    await rm(root, { recursive: true, force: true });
  });

  // The registry, with team/tool:v1 and :v2 (v2 changes 32 bytes in the middle of data/big.bin).
  const registryPort = await freePort();
  await mkdir(join(root, 'registry', 'storage'), { recursive: true });
  await writeFile(
    join(root, 'registry', 'config.yml'),
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(root, 'registry', 'storage')}\nhttp:\n  addr: 127.0.0.1:${registryPort}\n`,
  );
  const registry = spawn('docker-registry', ['serve', join(root, 'registry', 'config.yml')], {
    stdio: 'ignore',
  });
  children.push(registry);
  const registryHost = `127.0.0.1:${registryPort}`;
  await until('docker-registry to listen', async () => {
    const res = await fetch(`http://${registryHost}/v2/`).catch(() => null);
    await res?.body?.cancel();
    return res?.status === 200;
  });
  const big = randomBytes(256 * 1024);
  const v1Files = {
    'etc/version': Buffer.from('tool v1\n'),
    'bin/tool': Buffer.from('#!/bin/sh\necho tool\n'),
    'data/big.bin': big,
  };
  const big2 = Buffer.from(big);
  randomBytes(32).copy(big2, 128 * 1024);
  const v2Files = { ...v1Files, 'data/big.bin': big2 };
  for (const [tag, files] of [
    ['v1', v1Files],
    ['v2', v2Files],
  ] as const) {
    await writeImage(join(root, `image-${tag}`), tag, files);
    await run(
      'skopeo',
      [
        'copy',
        '--quiet',
        '--dest-tls-verify=false',
        `oci:${join(root, `image-${tag}`, 'layout')}:${tag}`,
        `docker://${registryHost}/team/tool:${tag}`,
      ],
      { env: { ...process.env, HOME: root } },
    );
  }

  const configFile = await writeGatewayConfig(
    root,
    `defaultLocation: lab\nlocations:\n  lab:\n    url: http://${registryHost}\n` +
      `cacheDir: ${join(root, 'cache')}\nattempts: 1\n` +
      `platforms:\n  cluster:\n    admins: [carol]\n    access: { type: fleet, app: ${APP}, filter: 'tags==cluster' }\n`,
  );
  const env = { ...process.env, FLOTILLA_ADMIN_PASSWORD: PASSWORD };
  const server = startProcess(
    [
      bin,
      'server',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      join(root, 'server'),
      '--gateway-config',
      configFile,
      '--log-level',
      'warn',
    ],
    env,
    /listening on (http:\/\/\S+)/,
  );
  children.push(server.child);
  const url = (await server.ready)?.[1] ?? '';
  const flotilla = (argv: string[], stdin?: string) =>
    cli(argv, { env: { FLOTILLA_CONFIG_DIR: join(root, 'cli'), FLOTILLA_SERVER: url }, stdin });
  assert.equal((await flotilla(['login', '--user', 'admin', '--password-stdin'], PASSWORD)).code, 0);
  const keysDir = join(root, 'keys');
  const init = await flotilla(['keys', 'init', '--no-passphrase', '--keys-dir', keysDir]);
  assert.equal(init.code, 0, init.stderr);

  // An API token for direct calls, and a registration key that tags the agent into the platform.
  const token = await adminApiToken(url, PASSWORD, 'fleet-test');
  const api = async <T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const r = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: (text ? JSON.parse(text) : null) as T };
  };
  const key = await api<{ secret: string }>('POST', '/api/v1/registration-keys', {
    name: 'cluster',
    tags: ['cluster'],
    autoAccept: true,
  });
  const agentDir = join(root, 'agent');
  await mkdir(agentDir, { recursive: true });
  await writeFile(join(agentDir, 'registration.key'), `${key.body.secret}\n`, { mode: 0o600 });
  const agent = startProcess(
    [
      bin,
      'agent',
      '--server',
      url,
      '--data-dir',
      agentDir,
      '--registration-key-file',
      join(agentDir, 'registration.key'),
      '--poll-interval',
      '2s',
      '--log-format',
      'json',
    ],
    process.env,
    null,
  );
  children.push(agent.child);
  const deviceId = await until('the agent to enroll', async () => {
    const r = await api<{ items: { id: string }[] }>(
      'GET',
      `/api/v1/devices?filter=${encodeURIComponent('tags==cluster;status==accepted')}`,
    );
    return r.body.items[0]?.id;
  });
  const appState = async (): Promise<DeviceApp | undefined> =>
    (await api<{ items: DeviceApp[] }>('GET', `/api/v1/devices/${deviceId}/apps`)).body.items.find(
      (a) => a.app === APP,
    );
  const committed = (targetPath: string) =>
    until(
      `${targetPath} committed on the agent`,
      async () => {
        const a = await appState();
        if (a?.desired !== targetPath) return null;
        if (a.phase === 'failed' || a.phase === 'rolled-back') throw new Error(JSON.stringify(a));
        return a.phase === 'committed' ? a : null;
      },
      120_000,
    );
  const installed = (path: string) => readFile(join(agentDir, 'apps', APP, 'current', path));

  // Without the delegation the import fails at publishing: the server refuses to sign.
  const refused = await flotilla(['images', 'pull', 'team/tool:v1', '--platform', 'cluster']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /FLT_TUF_NOT_DELEGATED|delegate-gateway/);

  // The offline step: the platform's app is delegated to the server's gateway role.
  const delegated = await flotilla([
    'keys',
    'delegate-gateway',
    '--app',
    APP,
    '--keys-dir',
    keysDir,
    '--json',
  ]);
  assert.equal(delegated.code, 0, delegated.stderr);
  assert.deepEqual(json<{ apps: string[] }>(delegated).apps, [APP]);

  const pulled = await flotilla(['images', 'pull', 'team/tool:v1', '--platform', 'cluster', '--json']);
  assert.equal(pulled.code, 0, pulled.stderr);
  const v1 = json<{ image: Image }>(pulled).image;
  assert.equal(v1.status, 'ready');
  assert.match(v1.path ?? '', new RegExp(`^${APP}/v1-[0-9a-f]{12}/[0-9a-f]{64}$`));
  await committed(v1.path ?? '');
  assert.equal((await installed('etc/version')).toString(), 'tool v1\n');
  assert.deepEqual(await installed('data/big.bin'), big);

  const fetchedLines = () =>
    agent
      .output()
      .split('\n')
      .filter((l) => l.includes('"release fetched"'))
      .map((l) => JSON.parse(l) as { deltaFiles: number; chunksFetched: number; wireBytes: number });
  const before = fetchedLines().length;
  const pulled2 = await flotilla(['images', 'pull', 'team/tool:v2', '--platform', 'cluster', '--json']);
  assert.equal(pulled2.code, 0, pulled2.stderr);
  const v2 = json<{ image: Image }>(pulled2).image;
  const app2 = await committed(v2.path ?? '');
  assert.deepEqual(await installed('data/big.bin'), big2);
  const fetched = await until('the agent to log its fetch', () => Promise.resolve(fetchedLines()[before]));
  assert.equal(fetched.deltaFiles, 1, JSON.stringify(fetched));
  assert.ok(
    app2.bytesFetched !== null && app2.bytesFetched <= big2.length,
    `fetched ${app2.bytesFetched} bytes for a ${big2.length}-byte changed file`,
  );
  assert.ok(fetched.wireBytes <= big2.length, JSON.stringify(fetched));
  t.diagnostic(
    `v2: ${fetched.deltaFiles} file(s) from deltas, ${fetched.chunksFetched} chunks, ${fetched.wireBytes} bytes on the wire ` +
      `(reported ${app2.bytesFetched}) for a ${big2.length}-byte changed file`,
  );

  // Removing v1 withdraws its gateway signature; the device, on v2, is untouched.
  assert.equal((await flotilla(['images', 'rm', 'team/tool:v1', '--platform', 'cluster'])).code, 0);
  const [, v1Version] = (v1.path ?? '').split('/');
  const r1 = await api<{ signed: boolean }>('GET', `/api/v1/releases/${APP}/${v1Version}`);
  assert.equal(r1.body.signed, false, 'v1 is no longer signed by the gateway role');
  assert.equal((await appState())?.current, v2.path);
  // Removing v2 takes it back from the device as well.
  assert.equal((await flotilla(['images', 'rm', 'team/tool:v2', '--platform', 'cluster'])).code, 0);
  assert.equal(await appState(), undefined, 'the app is no longer assigned');
  const audit = await api<{ items: { action: string }[] }>('GET', '/api/v1/audit?limit=200');
  const actions = new Set(audit.body.items.map((e) => e.action));
  for (const action of [
    'tuf.gateway.sign',
    'tuf.gateway.remove',
    'deployment.create',
    'deployment.withdraw',
    'image.remove',
  ])
    assert.ok(actions.has(action), `${action} audited`);
});
