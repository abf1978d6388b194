/**
 * Image delivery through the chunk store (issue 17, docs/containers.md "Image delivery"): the
 * images a compose release names are written into the release tree as their config JSON and their
 * layers as uncompressed layer tars, so they travel like any file (chunks deduplicated, changed
 * layers as deltas against the previous release's layer at the same path) and are verified against
 * the signed release. The agent's ReleaseTreeImageProvider reassembles `docker load` streams from
 * them. Layers must stay byte-identical tars: an image's id is the sha256 of its config, which
 * names each layer by the sha256 of its uncompressed tar (diff_id).
 *
 * Layout below the tree (`IMAGES_DIR`):
 *   images.json                    { schemaVersion: 1, images: { "<ref>": { id, dir } } }
 *   <dir>/config.json              the image config, byte for byte (sha256 = image id)
 *   <dir>/manifest.json            { schemaVersion: 1, id, layers: [{ file, diffId, size }] }
 *   <dir>/layer-000.tar, …         uncompressed layer tars, bottom first
 * `<dir>` is named after the image's repository, so the next version of an image has its layers
 * at the same paths and the agent asks for them as deltas.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, posix } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import Docker from 'dockerode';
import * as tar from 'tar-stream';
import { DecompressStream } from 'zstd-napi';
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { parseImageReference, parseManifest, pullImage, selectPlatform } from '@flotilla/gateway';
import type { ImagePlatform, RegistryAuth } from '@flotilla/gateway';

/** The reserved directory of the release tree that holds the images, relative to the tree. */
export const IMAGES_DIR = '.flotilla/images';

/** Where stageImages takes images from. */
export type ImageSourceOptions =
  /** The local Docker Engine (`docker save` through the Engine API); default socket or `docker`. */
  | { from: 'engine'; docker?: Docker }
  /** A `docker save` archive (optionally gzip-compressed). */
  | { from: 'archive'; path: string }
  /** An OCI image layout directory (index.json, blobs/); refs match `org.opencontainers.image.ref.name`. */
  | { from: 'oci'; path: string; platform?: ImagePlatform }
  /**
   * A registry over the distribution API. `url` (e.g. `http://127.0.0.1:5000`) serves every ref;
   * without it each ref's registry host is used (https, http for localhost and 127.0.0.1).
   */
  | {
      from: 'registry';
      url?: string;
      username?: string;
      password?: string;
      platform?: ImagePlatform;
      cacheDir?: string;
    };

export interface ImagesIndex {
  schemaVersion: 1;
  images: Record<string, { id: string; dir: string }>;
}

export interface ImageManifest {
  schemaVersion: 1;
  id: string;
  layers: { file: string; diffId: string; size: number }[];
}

interface LayerSource {
  /** The layer's (possibly compressed) bytes. */
  open(): Promise<Readable>;
  /** A file of exactly the uncompressed tar, which may be moved into the tree instead of copied. */
  movable?: string;
}

interface FoundImage {
  configBytes: Buffer;
  layers: LayerSource[];
}

interface Source {
  find(ref: string): Promise<FoundImage>;
  close(): Promise<void>;
}

const ID = /^sha256:[a-f0-9]{64}$/;

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function missing(ref: string, why: string): FlotillaError {
  return new FlotillaError('FLT_IMAGE_MISSING', `image ${ref}: ${why}`, { details: { reference: ref } });
}

/** `docker.io/library/busybox:latest` for `busybox`, so tags of saves and refs compare. */
export function normalizeReference(ref: string): string {
  const r = parseImageReference(ref);
  const registry = r.registry ?? 'docker.io';
  const repository =
    registry === 'docker.io' && !r.repository.includes('/') ? `library/${r.repository}` : r.repository;
  return `${registry}/${repository}${r.tag === null ? '' : `:${r.tag}`}${r.digest === null ? '' : `@${r.digest}`}`;
}

function hostArchitecture(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/**
 * Writes the images `refs` name into `<treeDir>/.flotilla/images` (replacing what a previous
 * staging left there) and returns ref → image id (`sha256:…`, as `docker image inspect` gives it).
 * Every layer is checked against the config's diff_ids and the config against the id.
 */
export async function stageImages(
  refs: readonly string[],
  source: ImageSourceOptions,
  treeDir: string,
): Promise<Record<string, string>> {
  const root = join(treeDir, IMAGES_DIR);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const scratch = join(root, `.staging-${randomBytes(4).toString('hex')}`);
  await mkdir(scratch);
  const src = openSource(source, scratch);
  const index: ImagesIndex = { schemaVersion: 1, images: {} };
  const result: Record<string, string> = {};
  const dirOfId = new Map<string, string>();
  const usedDirs = new Set<string>();
  /** diff_id → a file of the tree holding it (linked again for another image). */
  const placed = new Map<string, string>();
  try {
    for (const ref of [...new Set(refs)]) {
      parseImageReference(ref);
      const found = await src.find(ref);
      const id = sha256(found.configBytes);
      let dir = dirOfId.get(id);
      if (dir === undefined) {
        dir = directoryName(ref, id, usedDirs);
        usedDirs.add(dir);
        dirOfId.set(id, dir);
        await writeImage(join(root, dir), ref, id, found, placed, scratch);
      }
      index.images[ref] = { id, dir };
      result[ref] = id;
    }
    await writeFile(join(root, 'images.json'), `${JSON.stringify(index, null, 2)}\n`);
    return result;
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  } finally {
    await src.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

function directoryName(ref: string, id: string, used: Set<string>): string {
  const r = parseImageReference(ref);
  const base = r.repository.replace(/[^a-z0-9._-]+/g, '_').replace(/^[._]+/, '') || 'image';
  if (!used.has(base)) return base;
  return `${base}_${id.slice(7, 19)}`;
}

function configDiffIds(configBytes: Buffer, ref: string): string[] {
  let config: unknown;
  try {
    config = JSON.parse(configBytes.toString('utf8'));
  } catch {
    throw new FlotillaError('FLT_VALIDATION', `image ${ref}: its config is not JSON`);
  }
  const diffIds = (config as { rootfs?: { diff_ids?: unknown } } | null)?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every((d): d is string => typeof d === 'string' && ID.test(d))) {
    throw new FlotillaError('FLT_VALIDATION', `image ${ref}: its config has no sha256 rootfs.diff_ids`);
  }
  return diffIds;
}

async function writeImage(
  dir: string,
  ref: string,
  id: string,
  found: FoundImage,
  placed: Map<string, string>,
  scratch: string,
): Promise<void> {
  const diffIds = configDiffIds(found.configBytes, ref);
  if (diffIds.length !== found.layers.length) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `image ${ref}: its config names ${diffIds.length} layers, its manifest ${found.layers.length}`,
    );
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), found.configBytes);
  const manifest: ImageManifest = { schemaVersion: 1, id, layers: [] };
  for (const [i, layer] of found.layers.entries()) {
    const diffId = diffIds[i] as string;
    const file = `layer-${String(i).padStart(3, '0')}.tar`;
    const dest = join(dir, file);
    const already = placed.get(diffId);
    if (already !== undefined) {
      await link(already, dest);
    } else {
      await placeLayer(layer, dest, diffId, ref, scratch);
      placed.set(diffId, dest);
    }
    manifest.layers.push({ file, diffId, size: (await stat(dest)).size });
  }
  await writeFile(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

class Hasher extends Transform {
  readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    done(null, chunk);
  }
}

/** Reads a stream's first bytes and gives back a stream of all of it, with its compression. */
async function sniffed(
  input: Readable,
): Promise<{ stream: Readable; compression: 'gzip' | 'zstd' | 'none' }> {
  const head: Buffer[] = [];
  let length = 0;
  const it = input[Symbol.asyncIterator]();
  let ended = false;
  while (length < 4) {
    const next = (await it.next()) as IteratorResult<Buffer>;
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    length += next.value.length;
  }
  const first = Buffer.concat(head);
  const compression =
    first[0] === 0x1f && first[1] === 0x8b
      ? 'gzip'
      : first.length >= 4 && first.readUInt32LE(0) === 0xfd2fb528
        ? 'zstd'
        : 'none';
  async function* all(): AsyncGenerator<Buffer> {
    yield first;
    if (ended) return;
    for (;;) {
      const next = (await it.next()) as IteratorResult<Buffer>;
      if (next.done) return;
      yield next.value;
    }
  }
  return { stream: Readable.from(all(), { objectMode: false }), compression };
}

async function placeLayer(
  layer: LayerSource,
  dest: string,
  diffId: string,
  ref: string,
  scratch: string,
): Promise<void> {
  if (layer.movable !== undefined) {
    const hasher = new Hasher();
    await pipeline(createReadStream(layer.movable), hasher, new PassThrough().resume());
    if (`sha256:${hasher.hash.digest('hex')}` === diffId) {
      await rename(layer.movable, dest);
      return;
    }
  }
  const tmp = join(scratch, `layer-${randomBytes(6).toString('hex')}.tar`);
  const { stream, compression } = await sniffed(await layer.open());
  const hasher = new Hasher();
  const stages: NodeJS.ReadWriteStream[] = [];
  if (compression === 'gzip') stages.push(createGunzip());
  if (compression === 'zstd') stages.push(new DecompressStream());
  try {
    await pipeline([stream, ...stages, hasher, createWriteStream(tmp)]);
  } catch (error) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `image ${ref}: layer ${diffId} is not readable: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const got = `sha256:${hasher.hash.digest('hex')}`;
  if (got !== diffId) {
    throw new FlotillaError(
      'FLT_HASH_MISMATCH',
      `image ${ref}: a layer's uncompressed content is ${got}, its config says ${diffId}`,
      { details: { reference: ref, expected: diffId, actual: got } },
    );
  }
  await rename(tmp, dest);
}

function openSource(source: ImageSourceOptions, scratch: string): Source {
  switch (source.from) {
    case 'engine':
      return engineSource(source.docker ?? new Docker(), scratch);
    case 'archive':
      return archiveSource(source.path, scratch);
    case 'oci':
      return ociSource(source.path, source.platform);
    case 'registry':
      return registrySource(source);
  }
}

// --- docker save archives (from the engine or a file) ---

interface SaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** An extracted `docker save` tar: regular files under `dir`, symlinks resolved by name. */
class SaveDir {
  private constructor(
    readonly dir: string,
    private readonly links: Map<string, string>,
    readonly entries: SaveEntry[],
  ) {}

  static async extract(input: Readable, dir: string, what: string): Promise<SaveDir> {
    await mkdir(dir, { recursive: true });
    const links = new Map<string, string>();
    const extract = tar.extract();
    const done = (async () => {
      for await (const entry of extract) {
        const name = safeName(entry.header.name, what);
        if (entry.header.type === 'file' && name !== null) {
          await mkdir(dirname(join(dir, name)), { recursive: true });
          await pipeline(entry, createWriteStream(join(dir, name)));
        } else {
          if (entry.header.type === 'symlink' && name !== null && entry.header.linkname) {
            const target = safeName(posix.join(posix.dirname(name), entry.header.linkname), what);
            if (target !== null) links.set(name, target);
          }
          entry.resume();
        }
      }
    })();
    try {
      await Promise.all([pipeline(input, extract), done]);
    } catch (error) {
      if (isFlotillaError(error)) throw error;
      throw new FlotillaError(
        'FLT_VALIDATION',
        `${what} is not a readable tar: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    const save = new SaveDir(dir, links, []);
    let manifest: unknown;
    try {
      manifest = JSON.parse(await readFile(save.path('manifest.json'), 'utf8'));
    } catch {
      throw new FlotillaError('FLT_VALIDATION', `${what} has no manifest.json (not a docker save archive)`);
    }
    if (
      !Array.isArray(manifest) ||
      !manifest.every(
        (m: unknown) =>
          typeof (m as SaveEntry).Config === 'string' &&
          Array.isArray((m as SaveEntry).Layers) &&
          (m as SaveEntry).Layers.every((l) => typeof l === 'string'),
      )
    ) {
      throw new FlotillaError('FLT_VALIDATION', `${what}: manifest.json is not a docker save manifest`);
    }
    return new SaveDir(dir, links, manifest as SaveEntry[]);
  }

  path(name: string): string {
    let n = name;
    for (let i = 0; i < 8 && this.links.has(n); i++) n = this.links.get(n) as string;
    const clean = safeName(n, 'the archive');
    if (clean === null) throw new FlotillaError('FLT_VALIDATION', `the archive names ${name} outside itself`);
    return join(this.dir, clean);
  }

  async image(entry: SaveEntry): Promise<FoundImage> {
    const configBytes = await readFile(this.path(entry.Config));
    return {
      configBytes,
      layers: entry.Layers.map((l) => ({
        open: () => Promise.resolve(createReadStream(this.path(l))),
        movable: this.path(l),
      })),
    };
  }
}

function safeName(name: string, what: string): string | null {
  const n = normalize(name.replace(/^\.\/+/, ''));
  if (n === '.' || n === '' || n.endsWith('/')) return null;
  if (isAbsolute(n) || n.startsWith('..')) {
    throw new FlotillaError('FLT_VALIDATION', `${what} holds the unsafe path ${name}`);
  }
  return n;
}

function engineSource(docker: Docker, scratch: string): Source {
  let n = 0;
  return {
    async find(ref) {
      let id: string;
      try {
        id = ((await docker.getImage(ref).inspect()) as { Id: string }).Id;
      } catch (error) {
        throw engineError(error, ref);
      }
      let stream: NodeJS.ReadableStream;
      try {
        stream = await docker.getImage(id).get();
      } catch (error) {
        throw engineError(error, ref);
      }
      const save = await SaveDir.extract(
        Readable.from(stream as AsyncIterable<Buffer>),
        join(scratch, `engine-${n++}`),
        `docker save of ${ref}`,
      );
      for (const entry of save.entries) {
        const image = await save.image(entry);
        if (sha256(image.configBytes) === id) return image;
      }
      throw missing(ref, `the engine's docker save holds no image ${id}`);
    },
    close: () => Promise.resolve(),
  };
}

function engineError(error: unknown, ref: string): FlotillaError {
  const e = error as { statusCode?: number; code?: string; message?: string };
  if (e.statusCode === 404) return missing(ref, 'the Docker engine has no such image');
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'EACCES') {
    return new FlotillaError(
      'FLT_ENGINE_UNAVAILABLE',
      `the Docker engine cannot be reached (${e.code}); is dockerd running and DOCKER_HOST right?`,
      { cause: error },
    );
  }
  return new FlotillaError(
    'FLT_ENGINE_UNAVAILABLE',
    `the Docker engine failed: ${e.message ?? String(error)}`,
    {
      cause: error,
    },
  );
}

function archiveSource(path: string, scratch: string): Source {
  let save: Promise<SaveDir> | null = null;
  const load = async (): Promise<SaveDir> => {
    try {
      await stat(path);
    } catch (cause) {
      throw new FlotillaError('FLT_NOT_FOUND', `no such archive: ${path}`, { cause });
    }
    const { stream, compression } = await sniffed(createReadStream(path));
    const input = compression === 'gzip' ? stream.pipe(createGunzip()) : stream;
    return SaveDir.extract(input, join(scratch, 'archive'), `the archive ${path}`);
  };
  return {
    async find(ref) {
      save ??= load();
      const s = await save;
      const wanted = ID.test(ref) ? null : normalizeReference(ref);
      const offered: string[] = [];
      for (const entry of s.entries) {
        const tags = entry.RepoTags ?? [];
        offered.push(...tags);
        if (wanted !== null && tags.some((t) => safeNormalize(t) === wanted)) return s.image(entry);
        if (wanted === null) {
          const image = await s.image(entry);
          if (sha256(image.configBytes) === ref) return image;
        }
      }
      throw missing(ref, `the archive ${path} does not hold it (it has ${offered.join(', ') || 'no tags'})`);
    },
    close: () => Promise.resolve(),
  };
}

function safeNormalize(ref: string): string | null {
  try {
    return normalizeReference(ref);
  } catch {
    return null;
  }
}

// --- OCI image layouts ---

function ociSource(dir: string, platform: ImagePlatform | undefined): Source {
  const blob = (digest: string): string => {
    if (!ID.test(digest)) throw new FlotillaError('FLT_VALIDATION', `the OCI layout names blob ${digest}`);
    return join(dir, 'blobs', 'sha256', digest.slice(7));
  };
  const readBlob = async (digest: string): Promise<Buffer> => {
    let bytes: Buffer;
    try {
      bytes = await readFile(blob(digest));
    } catch (cause) {
      throw new FlotillaError('FLT_VALIDATION', `the OCI layout ${dir} lacks blob ${digest}`, { cause });
    }
    if (sha256(bytes) !== digest)
      throw new FlotillaError(
        'FLT_HASH_MISMATCH',
        `blob ${digest} of the OCI layout ${dir} has other content`,
      );
    return bytes;
  };
  return {
    async find(ref) {
      let index: {
        manifests?: { digest: string; mediaType: string; annotations?: Record<string, string> }[];
      };
      try {
        index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as typeof index;
      } catch (cause) {
        throw new FlotillaError('FLT_VALIDATION', `${dir} is not an OCI image layout (no index.json)`, {
          cause,
        });
      }
      const parsed = parseImageReference(ref);
      const wanted = safeNormalize(ref);
      const names = (index.manifests ?? []).map((m) => m.annotations?.['org.opencontainers.image.ref.name']);
      const desc = (index.manifests ?? []).find((m) => {
        const name = m.annotations?.['org.opencontainers.image.ref.name'];
        if (name === undefined) return false;
        return name === ref || name === parsed.tag || (wanted !== null && safeNormalize(name) === wanted);
      });
      if (!desc) {
        throw missing(
          ref,
          `the OCI layout ${dir} names no such image (it has ${names.filter(Boolean).join(', ') || 'none'})`,
        );
      }
      let manifest = parseManifest(await readBlob(desc.digest), desc.mediaType);
      if (manifest.kind === 'index') {
        const chosen = selectPlatform(manifest.manifests, {
          architecture: platform?.architecture ?? hostArchitecture(),
          os: platform?.os ?? 'linux',
          ...(platform?.variant !== undefined && { variant: platform.variant }),
        });
        manifest = parseManifest(await readBlob(chosen.digest), chosen.mediaType);
      }
      if (manifest.kind !== 'image') throw new FlotillaError('FLT_VALIDATION', `${ref}: nested image index`);
      return {
        configBytes: await readBlob(manifest.config.digest),
        layers: manifest.layers.map((l) => ({
          open: () => Promise.resolve(createReadStream(blob(l.digest))),
        })),
      };
    },
    close: () => Promise.resolve(),
  };
}

// --- registries ---

function registrySource(source: Extract<ImageSourceOptions, { from: 'registry' }>): Source {
  let cacheDir = source.cacheDir;
  let ownCache: string | null = null;
  return {
    async find(ref) {
      const parsed = parseImageReference(ref);
      const host = parsed.registry ?? 'docker.io';
      const url =
        source.url ??
        (host === 'docker.io'
          ? 'https://registry-1.docker.io'
          : /^(localhost|127\.[0-9.]+|\[::1\])(:\d+)?$/.test(host)
            ? `http://${host}`
            : `https://${host}`);
      const repository =
        host === 'docker.io' && !parsed.repository.includes('/')
          ? `library/${parsed.repository}`
          : parsed.repository;
      if (cacheDir === undefined) {
        ownCache = join(tmpdir(), `flotilla-image-blobs-${randomBytes(4).toString('hex')}`);
        cacheDir = ownCache;
      }
      const auth: RegistryAuth =
        source.username !== undefined && source.password !== undefined
          ? { type: 'token', username: source.username, password: source.password }
          : { type: 'none' };
      const pulled = await pullImage(
        { ...parsed, registry: null, repository },
        {
          location: { url, auth },
          cacheDir,
          platform: source.platform ?? { architecture: hostArchitecture(), os: 'linux' },
        },
      );
      return {
        configBytes: pulled.configBytes,
        layers: pulled.layers.map((l) => ({ open: () => Promise.resolve(createReadStream(l.path)) })),
      };
    },
    async close() {
      if (ownCache !== null) await rm(ownCache, { recursive: true, force: true });
    },
  };
}

/** Reads `images.json` of a tree (for tools and tests); null when the tree holds no images. */
export async function readImagesIndex(treeDir: string): Promise<ImagesIndex | null> {
  try {
    return JSON.parse(await readFile(join(treeDir, IMAGES_DIR, 'images.json'), 'utf8')) as ImagesIndex;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
