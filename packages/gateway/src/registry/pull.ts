import { createHash } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import { BlobCache } from './blob-cache.js';
import { RegistryClient } from './client.js';
import { readBounded } from './http.js';
import { MANIFEST_ACCEPT, parseManifest, selectPlatform } from './manifest.js';
import type { ParsedManifest } from './manifest.js';
import { formatImageReference, parseImageReference } from './reference.js';
import type {
  CachedLayer,
  ImageConfig,
  ImageReference,
  PulledImage,
  PullOptions,
  ResolvedImage,
  ResolveOptions,
} from './types.js';

const caches = new Map<string, BlobCache>();

/** Blobs fetched at once by default. */
export const PULL_CONCURRENCY = 4;

/** One BlobCache per directory in this process, so concurrent pulls share downloads. */
function cacheFor(dir: string): BlobCache {
  let cache = caches.get(dir);
  if (!cache) {
    cache = new BlobCache(dir);
    caches.set(dir, cache);
  }
  return cache;
}

async function resolveWith(
  client: RegistryClient,
  ref: ImageReference,
  options: ResolveOptions,
): Promise<ResolvedImage> {
  const platform = {
    architecture: options.platform?.architecture ?? 'amd64',
    os: options.platform?.os ?? 'linux',
    ...(options.platform?.variant === undefined ? {} : { variant: options.platform.variant }),
  };
  const limits = client.limits;
  const log = options.log ?? (() => undefined);
  const repository = ref.repository;
  const shown = formatImageReference(ref);
  options.onProgress?.({ phase: 'manifest', reference: shown });

  const first = await getManifest(client, repository, ref.digest ?? (ref.tag as string), ref.digest);
  let indexDigest: string | null = null;
  let image = first;
  if (first.parsed.kind === 'index') {
    indexDigest = first.digest;
    const chosen = selectPlatform(first.parsed.manifests, platform);
    log('image index resolved', { reference: shown, platform, manifest: chosen.digest });
    image = await getManifest(client, repository, chosen.digest, chosen.digest);
    if (image.parsed.kind !== 'image') {
      throw new FlotillaError(
        'FLT_REGISTRY_MANIFEST_INVALID',
        `index ${first.digest} points at another index`,
      );
    }
  }
  const manifest = image.parsed;
  if (manifest.kind !== 'image')
    throw new FlotillaError('FLT_REGISTRY_MANIFEST_INVALID', 'not an image manifest');
  if (manifest.layers.length > limits.maxLayers) {
    throw new FlotillaError(
      'FLT_LIMIT_EXCEEDED',
      `the image has ${manifest.layers.length} layers, more than ${limits.maxLayers}`,
    );
  }
  let total = 0;
  for (const layer of manifest.layers) {
    if (layer.size > limits.maxLayerBytes) {
      throw new FlotillaError(
        'FLT_LIMIT_EXCEEDED',
        `layer ${layer.digest} is ${layer.size} bytes, more than ${limits.maxLayerBytes}`,
      );
    }
    total += layer.size;
  }
  if (total > limits.maxImageBytes) {
    throw new FlotillaError(
      'FLT_LIMIT_EXCEEDED',
      `the image's layers are ${total} bytes, more than ${limits.maxImageBytes}`,
    );
  }

  const configBytes = await getSmallBlob(
    client,
    repository,
    manifest.config.digest,
    manifest.config.size,
    limits.maxConfigBytes,
  );
  let config: ImageConfig;
  try {
    config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  } catch {
    throw new FlotillaError(
      'FLT_REGISTRY_MANIFEST_INVALID',
      `image config ${manifest.config.digest} is not JSON`,
    );
  }
  if (!config || typeof config !== 'object') {
    throw new FlotillaError(
      'FLT_REGISTRY_MANIFEST_INVALID',
      `image config ${manifest.config.digest} is not an object`,
    );
  }
  if (
    (config.architecture !== undefined && config.architecture !== platform.architecture) ||
    (config.os !== undefined && config.os !== platform.os)
  ) {
    throw new FlotillaError(
      'FLT_REGISTRY_PLATFORM_MISSING',
      `the image is for ${config.os ?? '?'}/${config.architecture ?? '?'}, not ${platform.os}/${platform.architecture}`,
      { details: { os: config.os, architecture: config.architecture } },
    );
  }

  return {
    reference: shown,
    manifestDigest: image.digest,
    indexDigest,
    manifestMediaType: manifest.mediaType,
    configDigest: manifest.config.digest,
    config,
    configBytes,
    platform,
    layers: manifest.layers.map(({ digest, mediaType, compression, size }) => ({
      digest,
      mediaType,
      compression,
      size,
    })),
  };
}

/**
 * Resolves a reference to the platform's image manifest and config without downloading layers:
 * what a caller needs to tell whether it already holds the image (same `manifestDigest`).
 */
export async function resolveImage(
  reference: string | ImageReference,
  options: ResolveOptions,
): Promise<ResolvedImage> {
  const ref = typeof reference === 'string' ? parseImageReference(reference) : reference;
  return resolveWith(new RegistryClient(options.location, options.limits, options.signal), ref, options);
}

/**
 * Pulls an image's manifest, config and layers from `options.location` into the blob cache,
 * every blob verified by its sha256 digest while it streams. An index or manifest list is
 * resolved to `options.platform` (default linux/amd64). The reference's registry part is the
 * caller's to map to a location; its repository, tag and digest are used here. Layers already in
 * the cache are not downloaded again.
 */
export async function pullImage(
  reference: string | ImageReference,
  options: PullOptions,
): Promise<PulledImage> {
  const ref = typeof reference === 'string' ? parseImageReference(reference) : reference;
  const client = new RegistryClient(options.location, options.limits, options.signal);
  const resolved = await resolveWith(client, ref, options);
  const log = options.log ?? (() => undefined);
  const progress = options.onProgress ?? (() => undefined);
  const repository = ref.repository;
  const cache = cacheFor(options.cacheDir);
  const layers: CachedLayer[] = new Array<CachedLayer>(resolved.layers.length);
  let pulledBytes = 0;
  let cachedBytes = 0;
  // Several blobs at once (as skopeo does): one stream rarely fills a link, and each blob's
  // digest is checked while it streams anyway. The layers keep their manifest order.
  let next = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (next < resolved.layers.length && !stop) {
      const index = next++;
      const layer = resolved.layers[index] as (typeof resolved.layers)[number];
      const cached = await cache.has(layer.digest, layer.size);
      progress({
        phase: 'layer',
        digest: layer.digest,
        bytes: cached ? layer.size : 0,
        totalBytes: layer.size,
        cached,
      });
      let got: { path: string; pulledBytes: number };
      try {
        got = await cache.fetch(client, repository, layer.digest, layer.size, (bytes) =>
          progress({ phase: 'layer', digest: layer.digest, bytes, totalBytes: layer.size, cached: false }),
        );
      } catch (error) {
        stop = true;
        throw error;
      }
      if (got.pulledBytes === 0) cachedBytes += layer.size;
      pulledBytes += got.pulledBytes;
      layers[index] = {
        digest: layer.digest,
        mediaType: layer.mediaType,
        compression: layer.compression,
        size: layer.size,
        path: got.path,
      };
    }
  };
  const parallel = Math.max(1, Math.min(options.concurrency ?? PULL_CONCURRENCY, resolved.layers.length));
  const workers = Array.from({ length: parallel }, () => worker());
  // The first failure is the pull's; the other workers finish their blob and take no other.
  const settled = await Promise.allSettled(workers);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  progress({ phase: 'done', pulledBytes, cachedBytes });
  log('image pulled', {
    reference: resolved.reference,
    manifest: resolved.manifestDigest,
    layers: layers.length,
    pulledBytes,
  });
  return { ...resolved, layers, pulledBytes };
}

async function getManifest(
  client: RegistryClient,
  repository: string,
  reference: string,
  expectedDigest: string | null,
): Promise<{ digest: string; parsed: ParsedManifest }> {
  const r = await client.request({
    path: `/v2/${repository}/manifests/${reference}`,
    scope: `repository:${repository}:pull`,
    headers: { accept: MANIFEST_ACCEPT },
  });
  if (r.res.status !== 200) return client.fail(r, `manifest ${repository}:${reference}`);
  let bytes: Buffer;
  try {
    bytes = await readBounded(
      r.res,
      client.limits.maxManifestBytes,
      `manifest ${repository}:${reference}`,
      r.idle,
    );
  } finally {
    r.idle.done();
  }
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const announced = r.res.headers.get('docker-content-digest');
  if (expectedDigest !== null && digest !== expectedDigest) {
    throw new FlotillaError(
      'FLT_REGISTRY_DIGEST_MISMATCH',
      `manifest ${expectedDigest} arrived with digest ${digest}`,
      {
        details: { expected: expectedDigest, actual: digest },
      },
    );
  }
  if (announced !== null && announced.startsWith('sha256:') && announced !== digest) {
    throw new FlotillaError(
      'FLT_REGISTRY_DIGEST_MISMATCH',
      `manifest ${repository}:${reference} has digest ${digest}, the registry says ${announced}`,
      {
        details: { expected: announced, actual: digest },
      },
    );
  }
  return { digest, parsed: parseManifest(bytes, r.res.headers.get('content-type')) };
}

async function getSmallBlob(
  client: RegistryClient,
  repository: string,
  digest: string,
  size: number,
  max: number,
): Promise<Buffer> {
  if (size > max)
    throw new FlotillaError('FLT_LIMIT_EXCEEDED', `blob ${digest} is ${size} bytes, more than ${max}`);
  const r = await client.request({
    path: `/v2/${repository}/blobs/${digest}`,
    scope: `repository:${repository}:pull`,
  });
  if (r.res.status !== 200) return client.fail(r, `blob ${digest}`);
  let bytes: Buffer;
  try {
    bytes = await readBounded(r.res, max, `blob ${digest}`, r.idle);
  } finally {
    r.idle.done();
  }
  const got = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (got !== digest || bytes.length !== size) {
    throw new FlotillaError(
      'FLT_REGISTRY_DIGEST_MISMATCH',
      `blob ${digest} arrived with digest ${got} (${bytes.length} bytes)`,
      {
        details: { expected: digest, actual: got },
      },
    );
  }
  return bytes;
}
