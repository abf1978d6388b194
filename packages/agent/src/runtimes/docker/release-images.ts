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
import { open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import type { AppContext, TreeFiles } from '../runtime.js';
import type { ImageProvider } from './image-provider.js';
import { LoadRequest, loadImage } from './load-archive.js';
import type { LoadOptions } from './load-archive.js';
import { serveImage } from './loopback-registry.js';
import type { RegistryAnswer } from './loopback-registry.js';
import type { TreeImage } from './tree-image.js';

/** The tree's reserved images directory (written by `release push`). */
export const IMAGES_DIR = '.flotilla/images';

const ID = /^sha256:[a-f0-9]{64}$/;
const DIR = /^[a-z0-9][a-z0-9._-]*$/;
const FILE = /^layer-[0-9]{3,}\.tar$/;

async function closeImage(image: TreeImage): Promise<void> {
  for (const l of image.layers) await l.file.close().catch(() => undefined);
}

/** Layer files are read in 1 MiB pieces: fewer hops through the streams per layer (64 KiB by default). */
const READ_CHUNK = 1024 * 1024;

/** The files of a tree on disk; each opened file is held open (the tree may be renamed meanwhile). */
export function dirFiles(dir: string): TreeFiles {
  return {
    read: (path) => readFile(join(dir, path)).catch(() => null),
    open: async (path) => {
      let file: FileHandle;
      try {
        file = await open(join(dir, path), 'r');
      } catch {
        return null;
      }
      try {
        const info = await file.stat();
        if (!info.isFile()) throw new Error('not a file');
        return {
          size: info.size,
          pieces: () => file.createReadStream({ start: 0, autoClose: false, highWaterMark: READ_CHUNK }),
          close: () => file.close(),
        };
      } catch {
        await file.close().catch(() => undefined);
        return null;
      }
    },
  };
}

type Log = (message: string, fields?: Record<string, unknown>) => void;

/**
 * How an image reaches the engine: `load` (default) through `docker load`, its request opened as
 * the update begins; `pull` from the agent's loopback registry, falling back to `docker load` when
 * the engine cannot pull (docs/containers.md "Image delivery" compares them).
 */
export type ImageDelivery = 'pull' | 'load';

/** `FLOTILLA_DOCKER_IMAGE_DELIVERY` (`load` or `pull`; unset: `load`); FLT_VALIDATION otherwise. */
export function imageDeliveryFromEnv(env: NodeJS.ProcessEnv): ImageDelivery {
  const v = env.FLOTILLA_DOCKER_IMAGE_DELIVERY?.trim();
  if (v === undefined || v === '' || v === 'load') return 'load';
  if (v === 'pull') return 'pull';
  throw new FlotillaError(
    'FLT_VALIDATION',
    `FLOTILLA_DOCKER_IMAGE_DELIVERY must be "load" or "pull", not "${v}"`,
  );
}

/** How long a `docker load` opened as an update began waits for its image before it is cut. */
const EXPECTED_LOAD_MS = 120_000;

export interface ReleaseTreeImageOptions {
  delivery?: ImageDelivery;
  /** For tests: replaces the loopback registry's answer to a path. */
  registryAnswer?: RegistryAnswer;
}

export class ReleaseTreeImageProvider implements ImageProvider {
  /** Loads `prepare` began, by image id; `ensure` waits for one before looking at the engine. */
  private readonly loading = new Map<string, Promise<void>>();
  /** No pull: the `load` delivery, or the engine failed to pull from the loopback registry (`docker load` from then on). */
  private pullOff: boolean;
  /** `docker load` requests opened as an update began (`expect`), by image id, until a load claims one. */
  private readonly expected = new Map<string, { request: LoadRequest; timer: NodeJS.Timeout }>();

  constructor(
    private readonly log: Log = () => undefined,
    private readonly options: ReleaseTreeImageOptions = {},
  ) {
    this.pullOff = (options.delivery ?? 'load') === 'load';
  }

  /**
   * An update to a release naming `images` begins: for each image the engine lacks, a `docker
   * load` request is opened now (LoadRequest), so that the engine's untar child is up when the
   * fetch brings the layers. Never rejects; a request no load claims is cut after
   * EXPECTED_LOAD_MS (the engine loads nothing from it).
   */
  async expect(docker: Docker, images: Readonly<Record<string, string>>): Promise<void> {
    if (!this.pullOff) return; // the pull asks the engine itself once the files are there
    for (const id of new Set(Object.values(images))) {
      if (!ID.test(id) || this.loading.has(id) || this.expected.has(id)) continue;
      try {
        if (await hasImage(docker, id)) continue;
      } catch {
        return; // the engine does not answer: the start step reports it
      }
      if (this.expected.has(id)) continue;
      const request = new LoadRequest(docker);
      const timer = setTimeout(() => this.dropExpected(id), EXPECTED_LOAD_MS);
      timer.unref();
      this.expected.set(id, { request, timer });
    }
  }

  /** The image ids whose `docker load` request `expect` opened and no load has taken yet. */
  expecting(): string[] {
    return [...this.expected.keys()];
  }

  /** The request `expect` opened for `id`, taken (once); undefined when there is none. */
  private takeExpected(id: string): LoadRequest | undefined {
    const entry = this.expected.get(id);
    if (entry === undefined) return undefined;
    this.expected.delete(id);
    clearTimeout(entry.timer);
    return entry.request;
  }

  private dropExpected(id: string): void {
    this.takeExpected(id)?.abandon();
  }

  /** Cuts every request `expect` opened that no load took (the agent closes). */
  close(): void {
    for (const id of [...this.expected.keys()]) this.dropExpected(id);
  }

  /**
   * Begins loading each image the engine lacks ahead of the start step, from `ctx.files` (the
   * agent's cache, while the stage step writes the same tree) or from `ctx.releaseDir`. Resolves
   * once each image's config is checked and its layers are open (a directory may be renamed
   * after); the loads go on in the background. A load that fails is logged and left to `ensure`,
   * which loads again from the staged tree.
   */
  async prepare(
    docker: Docker,
    ctx: AppContext,
    images: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ): Promise<void> {
    for (const [ref, id] of Object.entries(images)) {
      if (!ID.test(id) || this.loading.has(id)) continue;
      let opened!: () => void;
      const ready = new Promise<void>((resolve) => (opened = resolve));
      // Registered at once: an `ensure` from here on waits for this load instead of starting one.
      const load = this.prepareOne(docker, ctx, ref, id, signal, opened).finally(() =>
        this.loading.delete(id),
      );
      this.loading.set(id, load);
      await Promise.race([ready, load]);
    }
  }

  /** One image for `prepare`; never rejects. */
  private async prepareOne(
    docker: Docker,
    ctx: AppContext,
    ref: string,
    id: string,
    signal: AbortSignal,
    opened: () => void,
  ): Promise<void> {
    // From the pull request until the engine asks for a layer, which it does only once it has the
    // image's config and has looked for each layer (0.1–0.3 s); then the layer's read counts.
    const requesting = ctx.files?.reading?.();
    try {
      if (await hasImage(docker, id)) {
        this.dropExpected(id);
        return;
      }
      const image = await findInTree(ctx.files ?? dirFiles(ctx.releaseDir), ref, id);
      opened();
      const ms = await this.loadAndClose(docker, image, ref, signal, ctx.files === undefined, requesting);
      this.log('image loaded ahead of the start step', { app: ctx.app, image: ref, id, ms });
    } catch (error) {
      this.log('loading an image ahead of the start step failed; the start step loads it', {
        app: ctx.app,
        image: ref,
        error: (error as Error).message,
      });
    } finally {
      requesting?.();
    }
  }

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
      await this.loading.get(id); // begun by prepare (never rejects)
      if (!(await hasImage(docker, id))) {
        const image = await findInTree(dirFiles(ctx.releaseDir), ref, id);
        const ms = await this.loadAndClose(docker, image, ref, signal, true);
        this.log('image loaded from the release tree', {
          app: ctx.app,
          image: ref,
          id,
          layers: image.layers.length,
          ms,
        });
      }
      await tagImage(docker, id, ref);
      this.dropExpected(id); // the image was there after all
    }
  }

  /**
   * Puts `image` on the engine (`pull`, else `load`), then closes its layer files; returns the
   * milliseconds it took. `rereadable`: its files can be read again (tree files on disk), so a
   * failed pull can fall back to `docker load` at once; otherwise the failure is thrown (the start
   * step loads from the staged tree).
   */
  private async loadAndClose(
    docker: Docker,
    image: TreeImage,
    ref: string,
    signal: AbortSignal,
    rereadable: boolean,
    onLayerRequested?: () => void,
  ): Promise<number> {
    const started = Date.now();
    try {
      if (await this.pull(docker, image, ref, signal, rereadable, onLayerRequested))
        return Date.now() - started;
      await this.load(docker, image, ref, signal, onLayerRequested);
    } finally {
      await closeImage(image);
    }
    return Date.now() - started;
  }

  /**
   * Pulls `image` from a loopback registry; false when the pull path is not taken (delivery `load`,
   * a ref pinned by digest, or an earlier pull failed). A pull that fails for another reason than a
   * layer's content is logged and turns the pull path off for this agent's run.
   */
  private async pull(
    docker: Docker,
    image: TreeImage,
    ref: string,
    signal: AbortSignal,
    rereadable: boolean,
    onLayerRequested?: () => void,
  ): Promise<boolean> {
    if (this.pullOff || splitRef(ref) === null) return false;
    try {
      const blobs = await pullImage(docker, image, ref, signal, rereadable, {
        answer: this.options.registryAnswer,
        onLayerRequested,
      });
      this.log("image pulled from the agent's loopback registry", {
        image: ref,
        id: image.id,
        blobs,
        layers: image.layers.length,
      });
      return true;
    } catch (error) {
      if (isFlotillaError(error) && error.code === 'FLT_HASH_MISMATCH') throw error;
      if (signal.aborted) throw signal.reason as Error;
      if (error instanceof SourceFailed) throw error.error; // the tree's side: docker load would fail as well
      this.pullOff = true;
      this.log("the engine could not pull from the agent's loopback registry; docker load instead", {
        image: ref,
        error: (error as Error).message,
      });
      if (!rereadable) throw error;
      return false;
    }
  }

  /**
   * Loads `image`, leaving out the bottom layers the engine has (all of them if it refuses that).
   * `onStreaming` runs once the first layer tar is being read.
   */
  private async load(
    docker: Docker,
    image: TreeImage,
    ref: string,
    signal: AbortSignal,
    onStreaming?: () => void,
  ): Promise<void> {
    const opened = this.takeExpected(image.id);
    const present = await presentLayers(docker, image, ref);
    try {
      await loadChecked(docker, image, ref, { signal, skipBottom: present, onStreaming, opened });
    } catch (error) {
      // An engine that wants every layer in the archive (or an image removed meanwhile): send all.
      if (present === 0 || (isFlotillaError(error) && error.code === 'FLT_HASH_MISMATCH')) throw error;
      this.log('docker load without the layers the engine has failed; sending every layer', {
        image: ref,
        error: (error as Error).message,
      });
      await loadChecked(docker, image, ref, { signal, skipBottom: 0, onStreaming });
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

async function readJson(files: TreeFiles, path: string): Promise<unknown> {
  const bytes = await files.read(path);
  if (bytes === null) throw new Error(`no ${path}`);
  return JSON.parse(bytes.toString('utf8')) as unknown;
}

/** The image `id` as the tree describes it; FLT_IMAGE_MISSING when the tree does not hold it. */
async function findInTree(files: TreeFiles, ref: string, id: string): Promise<TreeImage> {
  const root = IMAGES_DIR;
  const missing = (why: string): FlotillaError =>
    new FlotillaError('FLT_IMAGE_MISSING', `image ${ref} (${id}) is not on the engine and ${why}`, {
      details: { reference: ref, id },
    });
  let index: { images?: Record<string, { id?: unknown; dir?: unknown }> };
  try {
    index = (await readJson(files, `${root}/images.json`)) as typeof index;
  } catch {
    throw missing(`the release tree holds no images (${IMAGES_DIR}/images.json)`);
  }
  const entries = Object.entries(index.images ?? {});
  const hit = entries.find(([r, e]) => r === ref && e.id === id) ?? entries.find(([, e]) => e.id === id);
  if (!hit || typeof hit[1].dir !== 'string' || !DIR.test(hit[1].dir)) {
    throw missing('the release tree does not hold it');
  }
  const dir = `${root}/${hit[1].dir}`;
  let manifest: { id?: unknown; layers?: unknown };
  try {
    manifest = (await readJson(files, `${dir}/manifest.json`)) as typeof manifest;
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
  const config = await files.read(`${dir}/config.json`);
  if (config === null) throw missing(`${IMAGES_DIR}/${hit[1].dir}/config.json is missing`);
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
  // Each layer is opened now, so that the load reads these files even if the tree is renamed.
  const out: TreeImage = { id, config, layers: [] };
  try {
    for (const l of layers as { file: string; diffId: string }[]) {
      const path = `${dir}/${l.file}`;
      const file = await files.open(path);
      if (file === null) throw missing(`its layer ${path} is missing`);
      out.layers.push({ path, diffId: l.diffId, size: file.size, file });
    }
  } catch (error) {
    await closeImage(out);
    throw error;
  }
  return out;
}

/** How many of the engine's images `presentLayers` inspects at most (one API call each). */
const PRESENT_LAYERS_INSPECTS = 24;

/**
 * How many bottom layers of `image` the engine already holds: the longest prefix of its diff_ids
 * that an image on the engine starts with (docker load looks a layer up by its chain id and reads
 * its tar only when the engine lacks it, so those tars need not be sent). The listing has no
 * layers, so images are inspected one by one: those of the ref's repository first (an earlier
 * version, the likeliest to share them), then the newest, PRESENT_LAYERS_INSPECTS at most, so that
 * an engine holding hundreds of images does not delay the load (a base left unfound is only sent
 * again, and the engine skips it).
 */
async function presentLayers(docker: Docker, image: TreeImage, ref: string): Promise<number> {
  const want = image.layers.map((l) => l.diffId);
  const repo = splitRef(ref)?.repo;
  let best = 0;
  try {
    const summaries = (await docker.listImages()) as {
      Id: string;
      RepoTags?: string[] | null;
      Created?: number;
    }[];
    const sameRepo = new Set(
      summaries
        .filter((i) => repo !== undefined && (i.RepoTags ?? []).some((t) => splitRef(t)?.repo === repo))
        .map((i) => i.Id),
    );
    const order = summaries.sort(
      (a, b) =>
        Number(sameRepo.has(b.Id)) - Number(sameRepo.has(a.Id)) || (b.Created ?? 0) - (a.Created ?? 0),
    );
    for (const summary of order.slice(0, PRESENT_LAYERS_INSPECTS)) {
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

/** Loads `image` (load-archive.ts) and checks the engine then holds exactly `image.id`. */
async function loadChecked(
  docker: Docker,
  image: TreeImage,
  ref: string,
  options: LoadOptions,
): Promise<void> {
  const loaded = await loadImage(docker, image, ref, options);
  if (!(await hasImage(docker, image.id))) {
    throw new FlotillaError(
      'FLT_HASH_MISMATCH',
      `image ${ref}: the engine loaded ${loaded ?? 'another image'}, not ${image.id}`,
      { details: { reference: ref, expected: image.id, actual: loaded } },
    );
  }
}

/** A layer's source failed while the engine pulled it (e.g. the fetch bringing its chunks): not the engine's fault. */
class SourceFailed extends Error {
  constructor(readonly error: Error) {
    super(error.message, { cause: error });
  }
}

/**
 * Serves `image` on a loopback registry and has the engine pull it, tags it with `ref`, removes the
 * registry's own tag (the image is kept: it has `ref`), and checks the engine then holds `image.id`.
 * Returns how many blobs the engine fetched (config and layers; the layers it holds are skipped).
 */
async function pullImage(
  docker: Docker,
  image: TreeImage,
  ref: string,
  signal: AbortSignal,
  rereadable: boolean,
  options: { answer: RegistryAnswer | undefined; onLayerRequested: (() => void) | undefined },
): Promise<number> {
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  signal.addEventListener('abort', stop, { once: true });
  const { answer, onLayerRequested } = options;
  const registry = await serveImage(image, ref, {
    rereadable,
    onFailed: stop,
    ...(answer !== undefined && { answer }),
    ...(onLayerRequested !== undefined && { onLayerRequested }),
  });
  try {
    try {
      const response = await docker.createImage({
        fromImage: registry.ref,
        abortSignal: abort.signal,
      });
      await new Promise<void>((resolve, reject) => {
        let failed: string | null = null;
        response.on('error', reject);
        // Registered before followProgress's own, which takes an early close for the end.
        response.on('close', () => reject(new Error('the pull was interrupted')));
        docker.modem.followProgress(
          response,
          (error: Error | null) =>
            error ? reject(error) : failed !== null ? reject(new Error(failed)) : resolve(),
          // Once the pull has begun, the engine reports its failure as an event in the stream.
          (event: { error?: string }) => {
            if (typeof event.error === 'string') failed ??= event.error;
          },
        );
      });
    } catch (error) {
      if (registry.refused) throw registry.refused;
      if (signal.aborted) throw signal.reason as Error;
      if (registry.sourceFailed) throw new SourceFailed(registry.sourceFailed);
      throw new FlotillaError(
        'FLT_ENGINE_UNAVAILABLE',
        `docker pull of ${ref} from the agent's loopback registry failed: ${(error as Error).message ?? String(error)}`,
        { cause: error },
      );
    }
    if (registry.refused) throw registry.refused;
    let pulled: string;
    try {
      pulled = ((await docker.getImage(registry.ref).inspect()) as { Id: string }).Id;
    } catch (error) {
      throw new FlotillaError(
        'FLT_ENGINE_UNAVAILABLE',
        `docker pull of ${ref} from the agent's loopback registry ended without the image: ${(error as Error).message}`,
        { cause: error },
      );
    }
    try {
      if (pulled === image.id) await tagImage(docker, image.id, ref);
    } finally {
      // After the tag, so that the image keeps a reference and only this one goes.
      await docker
        .getImage(registry.ref)
        .remove({ noprune: true })
        .catch(() => undefined);
    }
    if (pulled !== image.id) {
      throw new FlotillaError(
        'FLT_HASH_MISMATCH',
        `image ${ref}: the engine pulled ${pulled}, not ${image.id}`,
        { details: { reference: ref, expected: image.id, actual: pulled } },
      );
    }
    return registry.blobsServed;
  } finally {
    signal.removeEventListener('abort', stop);
    await registry.close();
  }
}
