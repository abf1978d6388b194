/**
 * Image import: Flotilla's gateway (`pullImage` + `convertImage`) against the usual pipeline
 * (`skopeo copy docker://… oci:…`, then `umoci unpack` — or tar when umoci is absent — and
 * `mksquashfs`), both pulling from a real Debian `docker-registry` on 127.0.0.1.
 *
 * The image has LAYERS layers of incompressible files (FLT_BENCH_GATEWAY_MB in total, default
 * 500; FLT_BENCH_GATEWAY_DATA=text or mixed for compressible files); its next version changes the top layer only. Each pipeline imports version 1, then
 * version 2 with what it kept from version 1 (Flotilla: its blob cache; skopeo: its OCI layout,
 * whose blobs it does not fetch again). Run: `node bench/dist/gateway/import.js`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ConversionCache, convertImage, pullImage } from '@flotilla/gateway';
import { machineLine } from '../store/machine.js';
import { startRegistry } from './registry.js';

const totalMb = Number(process.env.FLT_BENCH_GATEWAY_MB ?? '500');
const layerCount = Number(process.env.FLT_BENCH_GATEWAY_LAYERS ?? '5');
const order = process.env.FLT_BENCH_GATEWAY_ORDER ?? 'interleaved';
const dataKind = process.env.FLT_BENCH_GATEWAY_DATA ?? 'random';
if (
  !(totalMb > 0) ||
  !Number.isInteger(layerCount) ||
  layerCount < 1 ||
  !['random', 'text', 'mixed'].includes(dataKind)
) {
  console.error(
    'FLT_BENCH_GATEWAY_MB must be a positive number, FLT_BENCH_GATEWAY_LAYERS a positive integer, FLT_BENCH_GATEWAY_DATA random, text or mixed',
  );
  process.exit(2);
}
const run = promisify(execFile);
const FILE_BYTES = 8 * 1024 * 1024;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

interface BuiltLayer {
  digest: string;
  diffId: string;
  size: number;
}

/** A vocabulary of 4096 made-up words of 2–9 letters, each followed by a space or a newline. */
const WORDS: Buffer[] = (() => {
  const r = randomBytes(4096 * 10);
  return Array.from({ length: 4096 }, (_, i) => {
    const length = 2 + ((r[i * 10] as number) % 8);
    let word = '';
    for (let j = 1; j <= length; j++) word += String.fromCharCode(97 + ((r[i * 10 + j] as number) % 26));
    return Buffer.from(`${word}${i % 16 === 0 ? '\n' : ' '}`);
  });
})();

/** Text-like bytes: words of WORDS in random order (deflate at level 9 keeps about 45 % of them). */
function textBytes(length: number): Buffer {
  const out = Buffer.allocUnsafe(length + 16);
  const r = randomBytes(Math.ceil(length / 2) + 2);
  let at = 0;
  for (let i = 0; at < length; i += 2) at += (WORDS[r.readUInt16LE(i) & 4095] as Buffer).copy(out, at);
  return out.subarray(0, length);
}

/**
 * A file's bytes as FLT_BENCH_GATEWAY_DATA says: random (incompressible, the default), text, or
 * mixed (runs of 1,000,000 bytes, alternately random and text, so that some blocks hold both).
 */
function fileBytes(length: number): Buffer {
  if (dataKind === 'random') return randomBytes(length);
  if (dataKind === 'text') return textBytes(length);
  const parts: Buffer[] = [];
  for (let at = 0, i = 0; at < length; at += 1_000_000, i++) {
    const n = Math.min(1_000_000, length - at);
    parts.push(i % 2 === 0 ? randomBytes(n) : textBytes(n));
  }
  return Buffer.concat(parts);
}

/** One gzip layer (level 1: random bytes do not compress) of `bytes` in files under `name/`. */
async function buildLayer(dir: string, blobs: string, name: string, bytes: number): Promise<BuiltLayer> {
  const root = join(dir, 'src', name);
  await mkdir(join(root, name), { recursive: true });
  for (let i = 0, left = bytes; left > 0; i++, left -= FILE_BYTES) {
    await writeFile(join(root, name, `part-${i}.bin`), fileBytes(Math.min(FILE_BYTES, left)));
  }
  const tarPath = join(dir, `${name}.tar`);
  await run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-C', root, '-cf', tarPath, name]);
  const diffId = await sha256File(tarPath);
  await run('gzip', ['-1', '-n', tarPath]);
  const digest = await sha256File(`${tarPath}.gz`);
  await run('mv', [`${tarPath}.gz`, join(blobs, digest)]);
  await rm(root, { recursive: true, force: true });
  return { digest, diffId, size: (await stat(join(blobs, digest))).size };
}

/** Writes an OCI layout with one manifest per tag (each its list of layers), for skopeo to push. */
async function writeLayout(dir: string, versions: Record<string, BuiltLayer[]>): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  const put = async (text: string): Promise<{ digest: string; size: number }> => {
    const digest = createHash('sha256').update(text).digest('hex');
    await writeFile(join(blobs, digest), text);
    return { digest: `sha256:${digest}`, size: Buffer.byteLength(text) };
  };
  const manifests = [];
  for (const [tag, layers] of Object.entries(versions)) {
    const config = await put(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${l.diffId}`) },
      }),
    );
    const manifest = await put(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: `sha256:${l.digest}`,
          size: l.size,
        })),
      }),
    );
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      annotations: { 'org.opencontainers.image.ref.name': tag },
    });
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[]))
    total += (await stat(join(dir, name))).size;
  return total;
}

interface Figures {
  seconds: number;
  /** Seconds spent fetching (Flotilla: pullImage; pipeline: skopeo copy). */
  pullSeconds: number;
  pulledBytes: number;
  squashfsBytes: number;
  /** Flotilla: bytes of squashfs blocks copied from the previous version instead of compressed. */
  copiedBytes?: number;
  /** CPU seconds (Flotilla: this process; pipeline: its child processes). */
  cpuSeconds: number;
}

/**
 * CPU seconds used so far by this process (all its threads: zlib's and fs's thread pool
 * included) and by its waited-for children (skopeo, umoci, mksquashfs): /proc/self/stat's utime,
 * stime, cutime, cstime. Less sensitive than wall-clock time to other processes' load.
 */
function cpuSeconds(): { self: number; children: number } {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  // fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
  const tick = 100;
  return {
    self: ((fields[11] ?? 0) + (fields[12] ?? 0)) / tick,
    children: ((fields[13] ?? 0) + (fields[14] ?? 0)) / tick,
  };
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return [Number(process.hrtime.bigint() - start) / 1e9, value];
}

/** Where each Flotilla squashfs is, by content id (the gateway's image cache, here). */
const flotillaImages = new Map<string, string>();

async function flotillaImport(url: string, tag: string, cacheDir: string, outDir: string): Promise<Figures> {
  await mkdir(outDir, { recursive: true });
  let pullSeconds = 0;
  let copiedBytes = 0;
  // As a gateway job does (jobs/registry-importer.ts, jobs/runner.ts): pull, find a cached image
  // sharing layers, convert reusing it, record this conversion for the next one.
  const conversions = new ConversionCache(
    join(cacheDir, 'incremental'),
    (id) => flotillaImages.get(id) ?? '',
  );
  const cpu0 = cpuSeconds().self;
  const [seconds, [pulled, converted]] = await timed(async () => {
    const [took, image] = await timed(() =>
      pullImage(`bench/data:${tag}`, { location: { url, auth: { type: 'none' } }, cacheDir }),
    );
    pullSeconds = took;
    const base = await conversions.findBase(image.layers.map((l) => l.digest));
    const result = await convertImage(image.layers, { outDir, outName: 'image.sqfs', base }).finally(() =>
      base?.close(),
    );
    flotillaImages.set(result.squashfsSha256, result.squashfsPath);
    if (result.index) await conversions.remember(result.squashfsSha256, result.index, outDir);
    copiedBytes = result.reused.copiedBytes;
    return [image, result] as const;
  });
  return {
    seconds,
    pullSeconds,
    pulledBytes: pulled.pulledBytes,
    squashfsBytes: converted.squashfsBytes,
    copiedBytes,
    cpuSeconds: cpuSeconds().self - cpu0,
  };
}

async function pipelineImport(
  host: string,
  tag: string,
  layout: string,
  outDir: string,
  umoci: boolean,
): Promise<Figures> {
  await mkdir(outDir, { recursive: true });
  const blobs = join(layout, 'blobs', 'sha256');
  const before = await dirBytes(blobs);
  const out = join(outDir, 'image.sqfs');
  let pullSeconds = 0;
  const cpu0 = cpuSeconds().children;
  const [seconds] = await timed(async () => {
    [pullSeconds] = await timed(() =>
      run('skopeo', [
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        `docker://${host}/bench/data:${tag}`,
        `oci:${layout}:${tag}`,
      ]),
    );
    const bundle = join(outDir, 'bundle');
    let rootfs = join(bundle, 'rootfs');
    if (umoci) {
      await run('umoci', ['unpack', '--rootless', '--image', `${layout}:${tag}`, bundle]);
    } else {
      rootfs = join(outDir, 'rootfs');
      await mkdir(rootfs);
      const index = JSON.parse(await readText(join(layout, 'index.json'))) as {
        manifests: { digest: string; annotations?: Record<string, string> }[];
      };
      const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
      const manifest = JSON.parse(await readText(join(blobs, entry!.digest.slice(7)))) as {
        layers: { digest: string }[];
      };
      // No whiteouts in this image, so extracting the layers in order is the whole job.
      for (const l of manifest.layers)
        await run('tar', ['-xzf', join(blobs, l.digest.slice(7)), '-C', rootfs]);
    }
    await run('mksquashfs', [rootfs, out, '-noappend', '-quiet', '-comp', 'gzip', '-all-root']);
    await rm(bundle, { recursive: true, force: true });
    await rm(join(outDir, 'rootfs'), { recursive: true, force: true });
  });
  return {
    seconds,
    pullSeconds,
    pulledBytes: (await dirBytes(blobs)) - before,
    squashfsBytes: (await stat(out)).size,
    cpuSeconds: cpuSeconds().children - cpu0,
  };
}

async function readText(path: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(path, 'utf8');
}

const mb = (n: number): string => (n / 1e6).toFixed(1);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'flt-bench-gateway-'));
  const registry = await startRegistry(join(dir, 'registry'));
  try {
    const umoci = (await run('sh', ['-c', 'command -v umoci || true'])).stdout.trim() !== '';
    const layout = join(dir, 'push');
    const blobs = join(layout, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const perLayer = Math.floor((totalMb * 1e6) / layerCount);
    console.log(`building ${layerCount} layers of ${mb(perLayer)} MB (v2: top layer changed)…`);
    const layers: BuiltLayer[] = [];
    for (let i = 0; i < layerCount; i++) layers.push(await buildLayer(dir, blobs, `layer${i}`, perLayer));
    const changed = await buildLayer(dir, blobs, `layer${layerCount - 1}`, perLayer);
    await writeLayout(layout, { v1: layers, v2: [...layers.slice(0, -1), changed] });
    for (const tag of ['v1', 'v2']) {
      await run(
        'skopeo',
        [
          'copy',
          '--quiet',
          '--dest-tls-verify=false',
          `oci:${layout}:${tag}`,
          `docker://${registry.host}/bench/data:${tag}`,
        ],
        {
          env: { ...process.env, HOME: dir },
        },
      );
    }
    await rm(layout, { recursive: true, force: true });

    const cacheDir = join(dir, 'flotilla-cache');
    const kept = join(dir, 'pipeline-layout');
    const flotillaSide = (tag: 'v1' | 'v2'): Promise<Figures> =>
      flotillaImport(registry.url, tag, cacheDir, join(dir, `flotilla-${tag}`));
    const pipelineSide = (tag: 'v1' | 'v2'): Promise<Figures> =>
      pipelineImport(registry.host, tag, kept, join(dir, `pipeline-${tag}`), umoci);
    // On a shared machine the load drifts within minutes: by default each import of one side is
    // followed at once by the same import of the other (F1 P1 F2 P2), so that the two figures
    // compared were taken under about the same load. FLT_BENCH_GATEWAY_ORDER=flotilla-first or
    // pipeline-first runs one side's two imports, then the other's.
    let f1: Figures, f2: Figures, p1: Figures, p2: Figures;
    if (order === 'pipeline-first') {
      p1 = await pipelineSide('v1');
      p2 = await pipelineSide('v2');
      f1 = await flotillaSide('v1');
      f2 = await flotillaSide('v2');
    } else if (order === 'flotilla-first') {
      f1 = await flotillaSide('v1');
      f2 = await flotillaSide('v2');
      p1 = await pipelineSide('v1');
      p2 = await pipelineSide('v2');
    } else {
      f1 = await flotillaSide('v1');
      p1 = await pipelineSide('v1');
      f2 = await flotillaSide('v2');
      p2 = await pipelineSide('v2');
    }
    await rm(cacheDir, { recursive: true, force: true });
    console.log(
      `order: ${order} (load average now ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')})`,
    );

    const pipeline = `skopeo + ${umoci ? 'umoci unpack' : 'tar'} + mksquashfs`;
    console.log(`\n${machineLine()}`);
    console.log(
      `image: ${layerCount} gzip layers, ${mb(layers.reduce((s, l) => s + l.size, 0))} MB (${dataKind} data); v2 changes 1 layer\n`,
    );
    const cells = (f: Figures): string =>
      `${f.seconds.toFixed(2)} | ${f.pullSeconds.toFixed(2)} | ${(f.seconds - f.pullSeconds).toFixed(2)} | ${mb(f.pulledBytes)}`;
    console.log(
      '| import | Flotilla s | pull s | convert s | MB pulled | pipeline s | skopeo s | unpack + mksquashfs s | MB pulled | pipeline s / Flotilla s |',
    );
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const [name, f, p] of [
      ['v1 (first)', f1, p1],
      ['v2 (one layer changed)', f2, p2],
    ] as const) {
      console.log(`| ${name} | ${cells(f)} | ${cells(p)} | ${(p.seconds / f.seconds).toFixed(2)} |`);
    }
    console.log(
      `\npipeline: ${pipeline}; squashfs v1: Flotilla ${mb(f1.squashfsBytes)} MB, pipeline ${mb(p1.squashfsBytes)} MB; v2: Flotilla ${mb(f2.squashfsBytes)} MB, pipeline ${mb(p2.squashfsBytes)} MB`,
    );
    console.log(
      `CPU seconds: v1 Flotilla ${f1.cpuSeconds.toFixed(1)}, pipeline ${p1.cpuSeconds.toFixed(1)}; v2 Flotilla ${f2.cpuSeconds.toFixed(1)}, pipeline ${p2.cpuSeconds.toFixed(1)}`,
    );
    console.log(`v2: Flotilla copied ${mb(f2.copiedBytes ?? 0)} MB of squashfs blocks from v1`);
    console.log(
      `v2 speed-up over its own v1: Flotilla ${(f1.seconds / f2.seconds).toFixed(2)}×, pipeline ${(p1.seconds / p2.seconds).toFixed(2)}×`,
    );
    console.log(
      `targets: v1 no slower than the pipeline: ${f1.seconds <= p1.seconds ? 'met' : 'missed'}; v2 ≥ 3× faster than the pipeline: ${p2.seconds >= 3 * f2.seconds ? 'met' : 'missed'}`,
    );
  } finally {
    await registry.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
