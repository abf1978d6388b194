/**
 * The whole chain with real processes: a docker-registry holding an image pushed by skopeo, a
 * `flotilla server --gateway-config … --redis …` process, a `flotilla gateway worker --redis …`
 * process, and the CLI. `images pull` ends with the image converted by the worker (the server
 * queues on Redis and converts nothing itself), `images lookup` answers its path on the platform,
 * and a pull of a missing tag exits non-zero with the registry's not-found error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Image, ImageLookupResponse } from '@flotilla/protocol';
import { cli, json } from '../helpers/memory-io.js';
import { REDIS_URL, tempRoot, until, writeGatewayConfig } from './helpers.js';

const run = promisify(execFile);
const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const bin = fileURLToPath(new URL(`../../src/bin.${ext}`, import.meta.url));
const PASSWORD = 'gateway-chain-password-1';

/** Starts a process and resolves once `pattern` appears in its output (its first match). */
function startProcess(
  args: string[],
  env: NodeJS.ProcessEnv,
  pattern: RegExp,
): Promise<{ child: ChildProcess; match: RegExpExecArray; output: () => string }> {
  const child = spawn(process.execPath, [...process.execArgv, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer): void => {
      output += b.toString();
      const match = pattern.exec(output);
      if (match) resolve({ child, match, output: () => output });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code}): ${output}`)));
  });
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

/** An OCI layout with one gzip layer (etc/version, bin/tool) under `tag`, written with GNU tar. */
async function writeImage(dir: string, tag: string): Promise<void> {
  const src = join(dir, 'src');
  const blobs = join(dir, 'layout', 'blobs', 'sha256');
  await mkdir(join(src, 'etc'), { recursive: true });
  await mkdir(join(src, 'bin'), { recursive: true });
  await mkdir(blobs, { recursive: true });
  await writeFile(join(src, 'etc', 'version'), `chain ${tag}\n`);
  await writeFile(join(src, 'bin', 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  const tarPath = join(dir, 'layer.tar');
  await run('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '-C',
    src,
    '-cf',
    tarPath,
    'etc',
    'bin',
  ]);
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

void test('server + worker processes on Redis + docker-registry: images pull, lookup, and a missing tag', async (t) => {
  const root = await tempRoot('flt-gw-chain-');
  // A Redis database of its own, so that no other test's workers see this queue (default prefix).
  const redisUrl = `${REDIS_URL.replace(/\/\d*$/, '')}/${randomInt(1, 16)}`;
  const children: (ChildProcess | undefined)[] = [];
  t.after(async () => {
    for (const child of children.reverse()) await stop(child);
    const { stdout } = await run('redis-cli', [
      '-u',
      redisUrl,
      '--scan',
      '--pattern',
      'bull:flotilla-gateway-imports:*',
    ]);
    const keys = stdout.split('\n').filter(Boolean);
    if (keys.length > 0) await run('redis-cli', ['-u', redisUrl, 'del', ...keys]);
    await rm(root, { recursive: true, force: true });
  });

  // The registry, with team/app:v1 pushed by skopeo.
  const registryPort = await freePort();
  await mkdir(join(root, 'registry', 'storage'), { recursive: true });
  await writeFile(
    join(root, 'registry', 'config.yml'),
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(root, 'registry', 'storage')}\nhttp:\n  addr: 127.0.0.1:${registryPort}\n`,
  );
  const registryChild = spawn('docker-registry', ['serve', join(root, 'registry', 'config.yml')], {
    stdio: 'ignore',
  });
  children.push(registryChild);
  const registryHost = `127.0.0.1:${registryPort}`;
  await until('docker-registry to listen', async () => {
    const res = await fetch(`http://${registryHost}/v2/`).catch(() => null);
    await res?.body?.cancel();
    return res?.status === 200;
  });
  await writeImage(join(root, 'image'), 'v1');
  await run(
    'skopeo',
    [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      `oci:${join(root, 'image', 'layout')}:v1`,
      `docker://${registryHost}/team/app:v1`,
    ],
    { env: { ...process.env, HOME: root } },
  );

  const platformDir = join(root, 'platform');
  const configFile = await writeGatewayConfig(
    root,
    `defaultLocation: lab\nlocations:\n  lab:\n    url: http://${registryHost}\n` +
      `cacheDir: ${join(root, 'cache')}\nattempts: 1\n` +
      `platforms:\n  cluster:\n    access: { type: local, imageDir: ${platformDir} }\n`,
  );
  const dataDir = join(root, 'server');
  const env = { ...process.env, FLOTILLA_ADMIN_PASSWORD: PASSWORD };
  const server = await startProcess(
    [
      bin,
      'server',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--gateway-config',
      configFile,
      '--redis',
      redisUrl,
      '--log-level',
      'warn',
    ],
    env,
    /listening on (http:\/\/\S+)/,
  );
  children.push(server.child);
  const worker = await startProcess(
    [
      bin,
      'gateway',
      'worker',
      '--redis',
      redisUrl,
      '--data-dir',
      dataDir,
      '--gateway-config',
      configFile,
      '--log-level',
      'info',
      '--log-format',
      'json',
    ],
    env,
    /gateway worker ready/,
  );
  children.push(worker.child);

  const flotilla = (argv: string[], stdin?: string) =>
    cli(argv, {
      env: { FLOTILLA_CONFIG_DIR: join(root, 'cli'), FLOTILLA_SERVER: server.match[1] ?? '' },
      stdin,
    });
  const login = await flotilla(['login', '--user', 'admin', '--password-stdin'], PASSWORD);
  assert.equal(login.code, 0, login.stderr);

  const pulled = await flotilla(['images', 'pull', 'team/app:v1', '--platform', 'cluster', '--json']);
  assert.equal(pulled.code, 0, pulled.stderr);
  const image = json<{ image: Image }>(pulled).image;
  assert.equal(image.status, 'ready');
  assert.equal(image.image, 'lab/team/app:v1');
  // The worker, not the server, converted it: the job ran in the worker's process.
  assert.match(worker.output(), /image ready/, 'the worker logged the import');

  const found = await flotilla(['images', 'lookup', 'team/app:v1', '--platform', 'cluster', '--json']);
  assert.equal(found.code, 0, found.stderr);
  const lookup = json<ImageLookupResponse>(found);
  assert.equal(lookup.id, image.id);
  assert.equal(lookup.path, join(platformDir, `${image.id ?? ''}.squashfs`));
  const { stdout: version } = await run('unsquashfs', ['-cat', lookup.path, 'etc/version']);
  assert.equal(version, 'chain v1\n', 'the squashfs on the platform holds the pushed layer');

  const missing = await flotilla(['images', 'pull', 'team/app:nope', '--platform', 'cluster']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /FLT_IMAGE_IMPORT_FAILED|FLT_REGISTRY_IMAGE_NOT_FOUND/);
  assert.match(
    missing.stderr,
    /MANIFEST_UNKNOWN|FLT_REGISTRY_IMAGE_NOT_FOUND/,
    "the error carries the registry's not-found",
  );
});
