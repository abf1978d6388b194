/**
 * Image update through Flotilla versus `docker pull` (bench/README.md, "containers"): an image
 * whose application layer (`--layer-mb`, default 64 MiB of 1 MiB files, half random and half
 * text) changes in one file, served by `busybox httpd` from the image. Measured on both sides: the
 * time from the update's start until the new container answers (its page says `v2`), and the
 * bytes on the wire (the page polled from the start on both sides). Docker side: Debian's docker-registry on 127.0.0.1 behind a counting TCP
 * proxy; on an engine running v1, `docker pull` of v2, `docker stop` of v1, `docker run` of v2.
 * Flotilla side: both trees (images staged from the engine into `.flotilla/images`) pushed to a
 * real server with the real CLI; a device (the agent's update engine with its docker runtime on
 * the same engine) running v1 as a compose app is assigned v2 (deltas on). Each round runs both
 * sides back to back (order alternating) after one warm-up round; medians are printed.
 *
 *   npx tsc -b bench && node bench/dist/containers/run.js [--layer-mb 64] [--reps 5] [--json]
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import Docker from 'dockerode';
import type { ReleaseSpec } from '@flotilla/agent';
import { stageImages } from '@flotilla/cli';
import {
  freePort,
  importLayeredBusyboxImage,
  startLocalRegistry,
  startPrivateDockerd,
} from '@flotilla/testkit';
import { BenchDevice } from '../delta/flotilla-device.js';
import { startFlotillaServer } from '../delta/flotilla-server.js';
import { treeIds } from '../delta/tree-ids.js';

const { values: opts } = parseArgs({
  options: {
    'layer-mb': { type: 'string', default: '64' },
    reps: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const layerMb = Number(opts['layer-mb']);
const reps = Number(opts.reps);

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

function appFiles(version: number): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  const text = Buffer.from('{"id":1,"name":"flotilla","tags":["a","b"],"ok":true}\n'.repeat(10_000)).subarray(
    0,
    512 * 1024,
  );
  for (let i = 0; i < layerMb; i++)
    files[`lib/part-${String(i).padStart(3, '0')}.bin`] = Buffer.concat([seeded(i), text]);
  if (version === 2) files['lib/part-017.bin'] = Buffer.concat([randomBytes(512 * 1024), text]);
  files['www/index.html'] = Buffer.from(`v${version}\n`);
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
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : Math.round((s[s.length / 2 - 1]! + s[s.length / 2]!) / 2);
};

/** Page cache written and dropped before each timed section (settle). */
const WARM_MB = 768;

/**
 * Brings the machine to the same state before each timed section, whichever side ran before:
 *
 * - Memory: writes WARM_MB of page cache and drops it. On these VMs (virtio-balloon with free
 *   page reporting on) new page cache costs several times more unless memory was freed just
 *   before: vfs's copy of the image for a new container (~132 MB) took 250–350 ms on Flotilla's
 *   side and 55–70 ms on docker's, whose section happened to follow such frees; after a write
 *   and delete of 300 MB it took 50–57 ms on Flotilla's side too (2026-12-07, bench/README.md).
 *   Warmed this way, docker's side measures the same as before; Flotilla's create takes
 *   50–70 ms.
 * - Dirty pages: `sync`. The agent's commit syncs the file system, which would otherwise also
 *   flush what the other side wrote just before (a pulled layer, extracted, and a container's
 *   root file system copied by vfs: about 200 MB), so each side pays only for its own writes.
 */
async function settle(work: string): Promise<void> {
  const file = join(work, 'warm');
  const piece = Buffer.alloc(1024 * 1024, 1);
  const handle = await open(file, 'w');
  try {
    for (let i = 0; i < WARM_MB; i++) await handle.write(piece);
  } finally {
    await handle.close();
  }
  await rm(file);
  await promisify(execFile)('sync');
}

/** The container's command: httpd serving the image's /app/www, ending at once on SIGTERM. */
const SERVE = ['sh', '-c', 'trap "exit 0" TERM; httpd -f -p 8080 -h /app/www & wait'];

/**
 * A poller of http://127.0.0.1:port/, started and waiting: `go(since)` begins the polls and
 * resolves with the ms from `since` until the page answers `want`. Both sides poll from their
 * t0, as a client of the app would: on this engine (userland docker-proxy), a connection made
 * from the moment the engine joins the new container to its network until its interface is up
 * (the ~0.3 s of the start) waits about 1 s (the host's next ARP probe, retrans_time_ms 1000)
 * and every later one with it, unless something tells the host where the container is (Flotilla's
 * agent does, docs/containers.md "A client connecting while a container starts"; `docker run`
 * does not), so a poller that begins only after `docker run` has returned would miss the wait
 * that one running through the start pays. The polls run on a worker thread (poller.ts), apart
 * from the agent this process hosts, started before the timed section.
 */
async function poller(port: number, want: string): Promise<(since: number) => Promise<number>> {
  const worker = new Worker(new URL('./poller.js', import.meta.url), { workerData: { port, want } });
  const result = new Promise<number>((resolve, reject) => {
    worker.on('message', (m: { ready?: boolean; ms?: number; error?: string }) => {
      if (m.ms !== undefined) resolve(m.ms);
      else if (m.error !== undefined) reject(new Error(m.error));
    });
    worker.once('error', reject);
  }).finally(() => void worker.terminate());
  result.catch(() => undefined); // seen by whoever calls go()
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  return (since) => {
    worker.postMessage(since);
    return result;
  };
}

/** Polls until the page answers `want` (the app is up before a timed section). */
async function answersNow(port: number, want: string): Promise<number> {
  return (await poller(port, want))(Date.now());
}

interface DockerRun {
  bytes: number;
  pullMs: number;
  answerMs: number;
}
interface FlotillaRun {
  bytes: number;
  fetchMs: number;
  applyMs: number;
  answerMs: number;
}

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
  await importLayeredBusyboxImage(build, join(work, 'img'), v1, appFiles(1));
  await importLayeredBusyboxImage(build, join(work, 'img'), v2, appFiles(2));
  for (const tag of ['v1', 'v2']) {
    await build.docker(['tag', `${repo}:${tag}`, `${registry.host}/${repo}:${tag}`]);
    await build.docker(['push', `${registry.host}/${repo}:${tag}`]);
  }
  const viaProxy = (tag: string): string => `127.0.0.1:${proxy.port}/${repo}:${tag}`;

  // Flotilla's releases: trees with the images, pushed with the CLI.
  const dockerBuild = new Docker({ socketPath: build.socketPath });
  const trees = [join(work, 'tree-v1'), join(work, 'tree-v2')] as const;
  const ids: Record<string, string> = {};
  const roots: string[] = [];
  for (const [i, tree] of trees.entries()) {
    const ref = i === 0 ? v1 : v2;
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, 'docker-compose.yml'), `services:\n  app:\n    image: ${ref}\n`);
    Object.assign(ids, await stageImages([ref], { from: 'engine', docker: dockerBuild }, tree));
    const root = (await treeIds(tree)).root;
    const out = (await server.push(tree, 'containers', `${i + 1}.0.0`)) as {
      release?: { rootObject?: string };
    };
    if (out.release?.rootObject !== root) throw new Error(`the CLI pushed another root than ${root}`);
    roots.push(root);
  }
  const appAs = (version: 1 | 2, port: number): Pick<ReleaseSpec, 'runtime' | 'config'> => {
    const ref = version === 1 ? v1 : v2;
    return {
      runtime: 'docker',
      config: {
        docker: {
          compose: {
            services: {
              app: {
                image: ref,
                command: SERVE,
                ports: [{ target: 8080, published: port, host_ip: '127.0.0.1' }],
              },
            },
          },
          images: { [ref]: ids[ref] as string },
          health: { windowMs: 100, timeoutMs: 20_000 },
          stopTimeoutS: 1,
        },
      },
    };
  };

  // The device engine holds v1 (as pulled), never v2 before a run. Its dockerd has no default
  // bridge: docker's containers publish their port from a network of their own.
  await device.docker(['pull', viaProxy('v1')]);
  await device.docker(['network', 'create', 'bench']);
  const dropV2 = async (): Promise<void> => {
    const ours = (await device.docker(['ps', '-aq', '--filter', 'label=io.flotilla.app=containers'])).trim();
    if (ours) await device.docker(['rm', '-f', ...ours.split(/\s+/)]);
    await device.docker(['rm', '-f', 'bench-v1', 'bench-v2']).catch(() => '');
    const nets = (await device.docker(['network', 'ls', '-q', '--filter', 'name=fl-'])).trim();
    if (nets) await device.docker(['network', 'rm', ...nets.split(/\s+/)]);
    await device.docker(['rmi', '-f', ids[v2] as string]).catch(() => '');
  };

  const dockerRun = async (): Promise<DockerRun> => {
    const port = await freePort();
    const publish = ['--network', 'bench', '-p', `127.0.0.1:${port}:8080`];
    await device.docker(['run', '-d', '--name', 'bench-v1', ...publish, viaProxy('v1'), ...SERVE]);
    await answersNow(port, 'v1');
    const go = await poller(port, 'v2');
    await settle(work);
    proxy.reset();
    const t0 = Date.now();
    const answered = go(t0);
    await device.docker(['pull', viaProxy('v2')]);
    const pullMs = Date.now() - t0;
    const bytes = proxy.bytes();
    await device.docker(['stop', '-t', '1', 'bench-v1']);
    await device.docker(['run', '-d', '--name', 'bench-v2', ...publish, viaProxy('v2'), ...SERVE]);
    const answerMs = await answered;
    const pulled = (await device.docker(['image', 'inspect', '--format', '{{.Id}}', viaProxy('v2')])).trim();
    if (pulled !== ids[v2]) throw new Error(`docker pulled ${pulled}, Flotilla staged ${ids[v2]}`);
    await dropV2();
    return { bytes, pullMs, answerMs };
  };

  let devices = 0;
  const flotillaRun = async (): Promise<FlotillaRun> => {
    const port = await freePort();
    const d = await BenchDevice.open(join(work, `device-${devices++}`), server, {
      dockerHost: `unix://${device.socketPath}`,
    });
    try {
      await d.install('containers', '1.0.0', roots[0]!, appAs(1, port));
      await answersNow(port, 'v1');
      const go = await poller(port, 'v2');
      await settle(work);
      const t0 = Date.now();
      const answered = go(t0);
      const r = await d.install('containers', '2.0.0', roots[1]!, appAs(2, port));
      const answerMs = await answered;
      console.error(`  flotilla phases: ${d.phaseTimes().join(' ')}; answered at ${answerMs} ms`);
      return { bytes: r.wireBytes, fetchMs: r.fetchMs, applyMs: r.applyMs, answerMs };
    } finally {
      await d.remove();
      await dropV2();
    }
  };

  // Reference: the bytes of a full install of v2 (a files device with nothing installed).
  const full = await BenchDevice.open(join(work, 'device-full'), server);
  const fullBytes = (await full.install('containers', '2.0.0', roots[1]!)).wireBytes;
  await full.remove();

  // One warm-up round (the server computes its deltas; caches fill), then `reps` rounds.
  await dockerRun();
  await flotillaRun();
  const dockerRuns: DockerRun[] = [];
  const flotillaRuns: FlotillaRun[] = [];
  for (let i = 0; i < reps; i++) {
    if (i % 2 === 0) {
      dockerRuns.push(await dockerRun());
      flotillaRuns.push(await flotillaRun());
    } else {
      flotillaRuns.push(await flotillaRun());
      dockerRuns.push(await dockerRun());
    }
  }
  const dockerMs = median(dockerRuns.map((r) => r.answerMs));
  const flotillaMs = median(flotillaRuns.map((r) => r.answerMs));
  const pullBytes = median(dockerRuns.map((r) => r.bytes));
  const updateBytes = median(flotillaRuns.map((r) => r.bytes));
  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpus().length} cores, ${Math.round(totalmem() / 1024 ** 3)} GiB, Node ${process.versions.node}, Linux ${release()}`,
    loadAverage: loadavg().map((l) => Number(l.toFixed(2))),
    layerMb,
    docker: {
      pullBytes,
      answerMs: dockerMs,
      pullMs: median(dockerRuns.map((r) => r.pullMs)),
      runs: dockerRuns,
    },
    flotilla: {
      updateBytes,
      answerMs: flotillaMs,
      fetchMs: median(flotillaRuns.map((r) => r.fetchMs)),
      applyMs: median(flotillaRuns.map((r) => r.applyMs)),
      fullBytes,
      runs: flotillaRuns,
    },
    bytesRatio: updateBytes / pullBytes,
    timeRatio: flotillaMs / dockerMs,
  };
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(
      `containers: ${layerMb} MiB application layer, one 1 MiB file changed (${result.machine}; load ${result.loadAverage.join(' ')})`,
    );
    console.log(
      `  docker pull + stop + run:  ${mb(pullBytes)} on the wire; new container answers after ${dockerMs} ms (median of ${reps}; pull ${result.docker.pullMs} ms)`,
    );
    console.log(`    runs: ${dockerRuns.map((r) => `${r.answerMs} (pull ${r.pullMs})`).join(', ')} ms`);
    console.log(
      `  flotilla update v1 → v2:   ${mb(updateBytes)} on the wire; new container answers after ${flotillaMs} ms (median; fetch ${result.flotilla.fetchMs}, apply ${result.flotilla.applyMs})`,
    );
    console.log(
      `    runs: ${flotillaRuns.map((r) => `${r.answerMs} (fetch ${r.fetchMs}, apply ${r.applyMs})`).join(', ')} ms`,
    );
    console.log(`  flotilla full install v2:  ${mb(fullBytes)}`);
    console.log(
      `  bytes ${(result.bytesRatio * 100).toFixed(1)}% of docker pull's (target ≤ 50%); time ${(result.timeRatio * 100).toFixed(0)}% of docker's (target ≤ 100%)`,
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
