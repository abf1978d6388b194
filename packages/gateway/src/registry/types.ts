/**
 * The registry client's public types: where images come from (a location, Shifter's word for a
 * registry with its authentication), which platform to pick, and what a pull returns.
 */

/**
 * How the gateway authenticates to a location. `none` never sends credentials (an anonymous
 * bearer token is still fetched when the registry asks for one); `basic` answers a Basic challenge
 * with the username and password; `token` sends them to the token server named by a Bearer
 * challenge (the registry token flow). A location's type only limits which credentials are sent:
 * the registry's WWW-Authenticate challenge decides the scheme.
 */
export type RegistryAuth =
  | { type: 'none' }
  | { type: 'basic'; username: string; password: string }
  | { type: 'token'; username?: string; password?: string };

/** A registry speaking the distribution API (Shifter's `dockerv2` location). */
export interface RegistryLocation {
  /** Base URL, e.g. `https://registry.example.org` or `http://127.0.0.1:5000`. */
  url: string;
  auth: RegistryAuth;
}

/** The platform an image is pulled for (OCI image index `platform` fields). */
export interface ImagePlatform {
  /** `amd64`, `arm64`, ... (GOARCH names). */
  architecture: string;
  /** Default `linux`. */
  os?: string;
  /** e.g. `v8` for arm64, `v7` for arm; matched only when given. */
  variant?: string;
}

/** Bounds on what a registry may send. */
export interface RegistryLimits {
  /** Largest manifest or index, bytes. Default 4 MiB (the distribution spec's suggestion). */
  maxManifestBytes: number;
  /** Largest image config blob, bytes. Default 8 MiB. */
  maxConfigBytes: number;
  /** Largest single layer blob, bytes. Default 16 GiB. */
  maxLayerBytes: number;
  /** Largest sum of layer sizes of one image, bytes. Default 64 GiB. */
  maxImageBytes: number;
  /** Most layers in one image. Default 256. */
  maxLayers: number;
  /** Time without any byte received before a request is abandoned, ms. Default 30 000. */
  idleTimeoutMs: number;
  /** How many times a cut blob download is resumed (HTTP Range) before giving up. Default 5. */
  maxResumes: number;
}

/** A parsed image reference: `[registry/]repository[:tag][@sha256:...]`. */
export interface ImageReference {
  /** Registry host[:port] when the reference names one, else null (use the default location). */
  registry: string | null;
  /** e.g. `library/busybox`. */
  repository: string;
  /** Tag, or null when only a digest is given. */
  tag: string | null;
  /** `sha256:<hex>` when the reference pins a digest, else null. */
  digest: string | null;
}

/** Progress of a pull, reported as bytes arrive (throttled by the caller if needed). */
export type PullProgress =
  | { phase: 'manifest'; reference: string }
  | {
      phase: 'layer';
      digest: string;
      /** Bytes of this layer on disk (verified or being verified). */
      bytes: number;
      /** The layer's size from the manifest. */
      totalBytes: number;
      /** true when the layer was already in the cache (no bytes pulled). */
      cached: boolean;
    }
  | { phase: 'done'; pulledBytes: number; cachedBytes: number };

/** Compression of a layer blob, from its media type (checked again against its magic bytes). */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** A layer blob in the cache, verified by its digest. */
export interface CachedLayer {
  digest: string;
  mediaType: string;
  compression: LayerCompression;
  /** Compressed size in bytes. */
  size: number;
  /** Path of the verified blob in the cache (read-only; shared between images). */
  path: string;
}

/** A layer as its manifest describes it. */
export type LayerDescriptor = Omit<CachedLayer, 'path'>;

/** What resolveImage returns: the image's identity, config and layer list, nothing downloaded. */
export interface ResolvedImage extends Omit<PulledImage, 'layers' | 'pulledBytes'> {
  layers: LayerDescriptor[];
}

/** What pullImage returns: everything the conversion needs, all verified. */
export interface PulledImage {
  /** The reference as pulled (registry/repository:tag). */
  reference: string;
  /** Digest of the image manifest (for a multi-platform image: the platform's manifest). */
  manifestDigest: string;
  /** Digest of the index or manifest list the tag pointed to, or null for a single manifest. */
  indexDigest: string | null;
  manifestMediaType: string;
  /** Digest of the image config blob: the image's identity, as Docker's image id. */
  configDigest: string;
  /** The image config (OCI image config / Docker container config JSON), parsed. */
  config: ImageConfig;
  /** The config blob's bytes as the registry sent them (sha256 = `configDigest`, the image id). */
  configBytes: Buffer;
  platform: Required<Pick<ImagePlatform, 'architecture' | 'os'>> & { variant?: string };
  /** Layers bottom first. */
  layers: CachedLayer[];
  /** Bytes downloaded by this pull; layers found in the cache count 0. */
  pulledBytes: number;
}

/** The fields of an image config the gateway uses; the rest is kept as-is. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: {
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Labels?: Record<string, string> | null;
  };
  rootfs?: { type: string; diff_ids: string[] };
  [key: string]: unknown;
}

export interface PullOptions {
  /** The registry to pull from when the reference names none (or names this location's host). */
  location: RegistryLocation;
  /** Default: linux/amd64. */
  platform?: ImagePlatform;
  /** Directory of the content-addressed blob cache (created if missing); shared between images. */
  cacheDir: string;
  signal?: AbortSignal;
  onProgress?: (progress: PullProgress) => void;
  limits?: Partial<RegistryLimits>;
  /** Called with one line per notable event (never with credentials); default: silent. */
  log?: (message: string, fields?: Record<string, unknown>) => void;
  /** Layer blobs downloaded at once. Default 4 (PULL_CONCURRENCY). */
  concurrency?: number;
}

/** resolveImage's options: a pull's without the cache. */
export type ResolveOptions = Omit<PullOptions, 'cacheDir'>;
