/**
 * Loads the images a release names from its own tree (docs/containers.md "Image delivery"): the
 * CLI wrote each image's config and uncompressed layer tars under `.flotilla/images/` (see
 * `@flotilla/cli`'s container-images.ts for the layout), they travelled through the chunk store
 * and were verified against the signed release by the fetch. Here an image the engine lacks is
 * reassembled as a `docker load` stream (docker-save format: manifest.json, config, layer tars),
 * streamed from the files without buffering a layer, loaded through the Engine API, tagged with
 * the ref, and checked: the engine must then hold exactly the image id the release names.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import * as tar from 'tar-stream';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import type { AppContext } from '../runtime.js';
import type { ImageProvider } from './image-provider.js';

/** The tree's reserved images directory (written by `release push`). */
export const IMAGES_DIR = '.flotilla/images';

const ID = /^sha256:[a-f0-9]{64}$/;
const DIR = /^[a-z0-9][a-z0-9._-]*$/;
const FILE = /^layer-[0-9]{3,}\.tar$/;

interface TreeImage {
  id: string;
  configPath: string;
  layers: { path: string; diffId: string; size: number }[];
}

type Log = (message: string, fields?: Record<string, unknown>) => void;

export class ReleaseTreeImageProvider implements ImageProvider {
  constructor(private readonly log: Log = () => undefined) {}

  async ensure(
    docker: Docker,
    ctx: AppContext,
    images: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ): Promise<void> {
    for (const [ref, id] of Object.entries(images)) {
      signal.throwIfAborted();
      if (!ID.test(id)) {
        throw new FlotillaError('FLT_VALIDATION', `image ${ref}: "${id}" is not an image id (sha256:<hex>)`);
      }
      if (!(await hasImage(docker, id))) {
        const image = await findInTree(ctx.releaseDir, ref, id);
        const started = Date.now();
        const present = await presentLayers(docker, image);
        try {
          await loadImage(docker, image, ref, signal, present);
        } catch (error) {
          // An engine that wants every layer in the archive (or an image removed meanwhile): send all.
          if (present === 0 || (isFlotillaError(error) && error.code === 'FLT_HASH_MISMATCH')) throw error;
          this.log('docker load without the layers the engine has failed; sending every layer', {
            image: ref,
            error: (error as Error).message,
          });
          await loadImage(docker, image, ref, signal, 0);
        }
        this.log('image loaded from the release tree', {
          app: ctx.app,
          image: ref,
          id,
          layers: image.layers.length,
          ms: Date.now() - started,
        });
      }
      await tagImage(docker, id, ref);
    }
  }
}

function engineError(error: unknown, what: string): FlotillaError {
  if (isFlotillaError(error)) return error;
  const e = error as { code?: string; message?: string; statusCode?: number };
  return new FlotillaError(
    'FLT_ENGINE_UNAVAILABLE',
    `the Docker engine failed while ${what}: ${e.code ?? e.message ?? String(error)}`,
    { cause: error },
  );
}

async function hasImage(docker: Docker, id: string): Promise<boolean> {
  try {
    const info = (await docker.getImage(id).inspect()) as { Id: string };
    return info.Id === id;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return false;
    throw engineError(error, `looking up image ${id}`);
  }
}

/** `repo:tag` of a ref (`host:port/a/b:tag`); null for refs pinned by digest (not taggable). */
function splitRef(ref: string): { repo: string; tag: string } | null {
  if (ref.includes('@')) return null;
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon > slash) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

async function tagImage(docker: Docker, id: string, ref: string): Promise<void> {
  const parts = splitRef(ref);
  if (parts === null) return;
  try {
    await docker.getImage(id).tag(parts);
  } catch (error) {
    throw engineError(error, `tagging ${id} as ${ref}`);
  }
}

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8')) as unknown;
}

/** The image `id` as the tree describes it; FLT_IMAGE_MISSING when the tree does not hold it. */
async function findInTree(releaseDir: string, ref: string, id: string): Promise<TreeImage> {
  const root = join(releaseDir, IMAGES_DIR);
  const missing = (why: string): FlotillaError =>
    new FlotillaError('FLT_IMAGE_MISSING', `image ${ref} (${id}) is not on the engine and ${why}`, {
      details: { reference: ref, id },
    });
  let index: { images?: Record<string, { id?: unknown; dir?: unknown }> };
  try {
    index = (await readJson(join(root, 'images.json'))) as typeof index;
  } catch {
    throw missing(`the release tree holds no images (${IMAGES_DIR}/images.json)`);
  }
  const entries = Object.entries(index.images ?? {});
  const hit = entries.find(([r, e]) => r === ref && e.id === id) ?? entries.find(([, e]) => e.id === id);
  if (!hit || typeof hit[1].dir !== 'string' || !DIR.test(hit[1].dir)) {
    throw missing('the release tree does not hold it');
  }
  const dir = join(root, hit[1].dir);
  let manifest: { id?: unknown; layers?: unknown };
  try {
    manifest = (await readJson(join(dir, 'manifest.json'))) as typeof manifest;
  } catch {
    throw missing(`${IMAGES_DIR}/${hit[1].dir}/manifest.json is missing or not JSON`);
  }
  const layers = manifest.layers;
  if (
    manifest.id !== id ||
    !Array.isArray(layers) ||
    !layers.every(
      (l: { file?: unknown; diffId?: unknown }) =>
        typeof l.file === 'string' && FILE.test(l.file) && typeof l.diffId === 'string' && ID.test(l.diffId),
    )
  ) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `image ${ref}: ${IMAGES_DIR}/${hit[1].dir}/manifest.json is invalid`,
    );
  }
  const configPath = join(dir, 'config.json');
  let config: Buffer;
  try {
    config = await readFile(configPath);
  } catch {
    throw missing(`${IMAGES_DIR}/${hit[1].dir}/config.json is missing`);
  }
  const got = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  if (got !== id) {
    throw new FlotillaError(
      'FLT_HASH_MISMATCH',
      `image ${ref}: its config in the release tree is ${got}, not ${id}`,
      {
        details: { reference: ref, expected: id, actual: got },
      },
    );
  }
  let diffIds: unknown;
  try {
    diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
  } catch {
    diffIds = undefined;
  }
  const listed = (layers as { file: string; diffId: string }[]).map((l) => l.diffId);
  if (!Array.isArray(diffIds) || diffIds.join(',') !== listed.join(',')) {
    throw new FlotillaError('FLT_VALIDATION', `image ${ref}: the tree's layer list differs from its config`);
  }
  const out: TreeImage = { id, configPath, layers: [] };
  for (const l of layers as { file: string; diffId: string }[]) {
    const path = join(dir, l.file);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      throw missing(`its layer ${IMAGES_DIR}/${hit[1].dir}/${l.file} is missing`);
    }
    out.layers.push({ path, diffId: l.diffId, size });
  }
  return out;
}

/** Layer files are read in 1 MiB pieces: fewer hops through the streams per layer (64 KiB by default). */
const READ_CHUNK = 1024 * 1024;

/**
 * Streams the image in docker-save format into `docker load`. Each layer is hashed as it streams;
 * a layer whose content is not its diff_id aborts the stream before its end (docker loads nothing)
 * and is FLT_HASH_MISMATCH.
 */
/**
 * How many bottom layers of `image` the engine already holds: the longest prefix of its diff_ids
 * that an image on the engine starts with (docker load looks a layer up by its chain id and reads
 * its tar only when the engine lacks it, so those tars need not be sent).
 */
async function presentLayers(docker: Docker, image: TreeImage): Promise<number> {
  const want = image.layers.map((l) => l.diffId);
  let best = 0;
  try {
    for (const summary of await docker.listImages()) {
      const info = (await docker.getImage(summary.Id).inspect()) as { RootFS?: { Layers?: string[] } };
      const have = info.RootFS?.Layers ?? [];
      let n = 0;
      while (n < want.length && n < have.length && want[n] === have[n]) n++;
      best = Math.max(best, n);
      if (best === want.length) break;
    }
  } catch {
    return 0;
  }
  // The top layer is always sent, so the load has something to register if the image is gone.
  return Math.min(best, want.length - 1);
}

async function loadImage(
  docker: Docker,
  image: TreeImage,
  ref: string,
  signal: AbortSignal,
  skipBottom: number,
): Promise<void> {
  const pack = tar.pack();
  const state: { refused: FlotillaError | null } = { refused: null };
  const produce = async (): Promise<void> => {
    const config = await readFile(image.configPath);
    const configName = `${image.id.slice(7)}.json`;
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: configName, size: config.length, mode: 0o644 }, config, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    const names: string[] = [];
    const sent = new Set<string>();
    for (const [i, layer] of image.layers.entries()) {
      signal.throwIfAborted();
      const name = `${layer.diffId.slice(7)}/layer.tar`;
      names.push(name);
      if (i < skipBottom || sent.has(name)) continue;
      sent.add(name);
      const hash = createHash('sha256');
      const entry = pack.entry({ name, size: layer.size, mode: 0o644 });
      // The entry's end is held back until the hash is checked, so a bad layer never completes.
      await pipeline(
        createReadStream(layer.path, { highWaterMark: READ_CHUNK }),
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            hash.update(chunk);
            yield chunk;
          }
          const got = `sha256:${hash.digest('hex')}`;
          if (got !== layer.diffId) {
            state.refused = new FlotillaError(
              'FLT_HASH_MISMATCH',
              `image ${ref}: layer ${layer.diffId} in the release tree has other content (${got}); it was changed after the release was installed`,
              { details: { reference: ref, expected: layer.diffId, actual: got, path: layer.path } },
            );
            throw state.refused;
          }
        },
        entry,
      );
    }
    const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: null, Layers: names }]));
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: 'manifest.json', size: manifest.length, mode: 0o644 }, manifest, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    pack.finalize();
  };
  const producing = produce().catch((error: unknown) => {
    pack.destroy(error as Error);
    throw error;
  });
  // Awaited below, but it may fail while docker.loadImage is still pending: handled now, so that
  // the failure is never an unhandled rejection (which would end the agent's process).
  producing.catch(() => undefined);
  let loaded: string | null = null;
  try {
    // tar-stream's pack is a Node stream: the request reads it directly (an error destroys the request).
    const body = pack as unknown as NodeJS.ReadableStream;
    const response = await docker.loadImage(body, { quiet: true });
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(
        response,
        (error: Error | null) => (error ? reject(error) : resolve()),
        (event: { stream?: string; error?: string }) => {
          const m = /Loaded image ID: (sha256:[a-f0-9]{64})/.exec(event.stream ?? '');
          if (m) loaded = m[1] as string;
        },
      );
    });
    await producing;
  } catch (error) {
    await producing.catch(() => undefined);
    if (state.refused) throw state.refused;
    if (isFlotillaError(error)) throw error;
    if (signal.aborted) throw signal.reason as Error;
    throw new FlotillaError(
      'FLT_ENGINE_UNAVAILABLE',
      `docker load of ${ref} failed: ${(error as Error).message ?? String(error)}`,
      { cause: error },
    );
  }
  if (state.refused) throw state.refused;
  if (!(await hasImage(docker, image.id))) {
    throw new FlotillaError(
      'FLT_HASH_MISMATCH',
      `image ${ref}: the engine loaded ${loaded ?? 'another image'}, not ${image.id}`,
      { details: { reference: ref, expected: image.id, actual: loaded } },
    );
  }
}
