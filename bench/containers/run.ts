/**
 * Image update through Flotilla versus `docker pull` (bench/README.md, "containers"): an image
 * whose application layer (`--layer-mb`, default 64 MiB of 1 MiB files, half random and half
 * text) changes in one file. Docker side: Debian's docker-registry on 127.0.0.1 behind a counting
 * TCP proxy; an engine holding v1 pulls v2 (bytes the proxy carried to the engine, time of the
 * pull). Flotilla side: both trees (images staged from the engine into `.flotilla/images`) pushed
 * to a real server with the real CLI, a device's update engine that runs v1 installs v2 (response
 * bytes, deltas on), then the image is loaded from the tree into an engine holding v1.
 *
 *   npx tsc -b bench && node bench/dist/containers/run.js [--layer-mb 64] [--json]
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { ReleaseTreeImageProvider } from '@flotilla/agent';
import { stageImages } from '@flotilla/cli';
import { importLayeredBusyboxImage, startLocalRegistry, startPrivateDockerd } from '@flotilla/testkit';
import { measureFlotilla } from '../delta/flotilla-measure.js';
import { startFlotillaServer } from '../delta/flotilla-server.js';

const { values: opts } = parseArgs({
  options: {
    'layer-mb': { type: 'string', default: '64' },
    json: { type: 'boolean', default: false },
  },
});
const layerMb = Number(opts['layer-mb']);

/** A TCP proxy counting the bytes it carries back to its clients. */
async function countingProxy(
  target: number,
): Promise<{ port: number; bytes: () => number; reset: () => void; close: () => Promise<void> }> {
  let bytes = 0;
  const server: Server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    upstream.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    bytes: () => bytes,
    reset: () => {
      bytes = 0;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function appFiles(changed: boolean): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  const text = Buffer.from('{"id":1,"name":"flotilla","tags":["a","b"],"ok":true}\n'.repeat(10_000)).subarray(
    0,
    512 * 1024,
  );
  for (let i = 0; i < layerMb; i++)
    files[`lib/part-${String(i).padStart(3, '0')}.bin`] = Buffer.concat([seeded(i), text]);
  if (changed) files['lib/part-017.bin'] = Buffer.concat([randomBytes(512 * 1024), text]);
  return files;
}

const seeds = new Map<number, Buffer>();
function seeded(i: number): Buffer {
  let b = seeds.get(i);
  if (!b) {
    b = randomBytes(512 * 1024);
    seeds.set(i, b);
  }
  return b;
}

const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(2)} MB`;

const work = await mkdtemp(join(tmpdir(), 'flt-bench-containers-'));
const build = await startPrivateDockerd(join(work, 'build'));
const device = await startPrivateDockerd(join(work, 'device'));
const registry = await startLocalRegistry(join(work, 'registry'));
const proxy = await countingProxy(Number(registry.host.split(':')[1]));
const server = await startFlotillaServer();
try {
  const repo = 'bench/app';
  const v1 = `${repo}:v1`;
  const v2 = `${repo}:v2`;
  await mkdir(join(work, 'img'), { recursive: true });
  await importLayeredBusyboxImage(build, join(work, 'img'), v1, appFiles(false));
  await importLayeredBusyboxImage(build, join(work, 'img'), v2, appFiles(true));
  for (const tag of ['v1', 'v2']) {
    await build.docker(['tag', `${repo}:${tag}`, `${registry.host}/${repo}:${tag}`]);
    await build.docker(['push', `${registry.host}/${repo}:${tag}`]);
  }
  const viaProxy = (tag: string): string => `127.0.0.1:${proxy.port}/${repo}:${tag}`;

  // Docker: the device engine holds v1, pulls v2.
  await device.docker(['pull', viaProxy('v1')]);
  proxy.reset();
  let t0 = Date.now();
  await device.docker(['pull', viaProxy('v2')]);
  const pullMs = Date.now() - t0;
  const pullBytes = proxy.bytes();
  const pulledId = (await device.docker(['image', 'inspect', '--format', '{{.Id}}', viaProxy('v2')])).trim();
  await device.docker(['rmi', viaProxy('v2')]);

  // Flotilla: trees with the images, pushed; a device on v1 installs v2; the image is loaded.
  const dockerBuild = new Docker({ socketPath: build.socketPath });
  const t1 = join(work, 'tree-v1');
  const t2 = join(work, 'tree-v2');
  for (const d of [t1, t2]) await mkdir(d, { recursive: true });
  await writeFile(join(t1, 'docker-compose.yml'), `services:\n  app:\n    image: ${repo}:v1\n`);
  await writeFile(join(t2, 'docker-compose.yml'), `services:\n  app:\n    image: ${repo}:v2\n`);
  await stageImages([v1], { from: 'engine', docker: dockerBuild }, t1);
  const ids = await stageImages([v2], { from: 'engine', docker: dockerBuild }, t2);
  const figures = await measureFlotilla(server, 'containers', t1, t2, 1);
  const dockerDevice = new Docker({ socketPath: device.socketPath });
  t0 = Date.now();
  await new ReleaseTreeImageProvider().ensure(
    dockerDevice,
    {
      app: 'containers',
      release: {} as never,
      appDir: t2,
      releaseDir: t2,
      currentLink: t2,
      dataDir: t2,
      logDir: t2,
    },
    ids,
    new AbortController().signal,
  );
  const loadMs = Date.now() - t0;
  const loadedId = (await device.docker(['image', 'inspect', '--format', '{{.Id}}', v2])).trim();
  if (loadedId !== ids[v2] || pulledId !== ids[v2])
    throw new Error(`ids differ: staged ${ids[v2]}, loaded ${loadedId}, pulled ${pulledId}`);
  const flotillaMs = figures.fetchMs + figures.applyMs + loadMs;
  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpus().length} cores, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.versions.node}, Linux ${release()}`,
    layerMb,
    docker: { pullBytes, pullMs },
    flotilla: {
      updateBytes: figures.updateBytes,
      fetchMs: figures.fetchMs,
      applyMs: figures.applyMs,
      loadMs,
      totalMs: flotillaMs,
      fullBytes: figures.fullBytes,
    },
    bytesRatio: figures.updateBytes / pullBytes,
  };
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(`containers: ${layerMb} MiB application layer, one 1 MiB file changed (${result.machine})`);
    console.log(`  docker pull v2 onto v1:   ${mb(pullBytes)} on the wire, ${pullMs} ms`);
    console.log(
      `  flotilla update v1 → v2:  ${mb(figures.updateBytes)} on the wire, ${flotillaMs} ms (fetch ${figures.fetchMs} + apply ${figures.applyMs} + docker load ${loadMs})`,
    );
    console.log(`  flotilla full install v2: ${mb(figures.fullBytes)}`);
    console.log(
      `  bytes ratio ${(result.bytesRatio * 100).toFixed(1)}% of docker pull (target ≤ 50%); time ${flotillaMs <= pullMs ? 'no slower' : 'SLOWER'} than docker pull`,
    );
  }
} finally {
  await server.stop();
  await proxy.close();
  await registry.stop();
  await device.stop();
  await build.stop();
  await rm(work, { recursive: true, force: true });
}
