import { FlotillaError } from '@flotilla/protocol';
import type { ImagePlatform, LayerCompression } from './types.js';

export const MediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

/** The Accept header for manifest requests: both image formats and both index formats. */
export const MANIFEST_ACCEPT = Object.values(MediaTypes).join(', ');

const LAYER_TYPES: Record<string, LayerCompression> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
};

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture?: string; os?: string; variant?: string };
}

export type ParsedManifest =
  | { kind: 'index'; mediaType: string; manifests: Descriptor[] }
  | {
      kind: 'image';
      mediaType: string;
      config: Descriptor;
      layers: (Descriptor & { compression: LayerCompression })[];
    };

const DIGEST = /^sha256:[a-f0-9]{64}$/;

function invalid(message: string, details?: Record<string, unknown>): FlotillaError {
  return new FlotillaError('FLT_REGISTRY_MANIFEST_INVALID', message, details ? { details } : {});
}

function descriptor(value: unknown, where: string): Descriptor {
  if (!value || typeof value !== 'object') throw invalid(`${where} is not an object`);
  const v = value as Record<string, unknown>;
  if (typeof v.mediaType !== 'string') throw invalid(`${where} has no mediaType`);
  if (typeof v.digest !== 'string' || !DIGEST.test(v.digest)) {
    throw invalid(`${where} has no sha256 digest (other algorithms are not supported)`, { digest: v.digest });
  }
  if (typeof v.size !== 'number' || !Number.isSafeInteger(v.size) || v.size < 0)
    throw invalid(`${where} has no valid size`);
  const d: Descriptor = { mediaType: v.mediaType, digest: v.digest, size: v.size };
  if (v.platform && typeof v.platform === 'object') {
    const p = v.platform as Record<string, unknown>;
    d.platform = {};
    if (typeof p.architecture === 'string') d.platform.architecture = p.architecture;
    if (typeof p.os === 'string') d.platform.os = p.os;
    if (typeof p.variant === 'string') d.platform.variant = p.variant;
  }
  return d;
}

/**
 * Parses a manifest body. The media type comes from the body's `mediaType` (required by Docker
 * schema 2, optional in OCI) or else the response's Content-Type.
 */
export function parseManifest(bytes: Buffer, contentType: string | null): ParsedManifest {
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid('the manifest is not JSON');
  }
  if (!body || typeof body !== 'object') throw invalid('the manifest is not a JSON object');
  const m = body as Record<string, unknown>;
  const mediaType =
    typeof m.mediaType === 'string'
      ? m.mediaType
      : (contentType ?? '').split(';')[0]?.trim() || MediaTypes.ociManifest;
  if (m.schemaVersion !== 2) {
    throw invalid(
      `manifest schema version ${String(m.schemaVersion)} is not supported (only schema 2 and OCI)`,
      {
        schemaVersion: m.schemaVersion,
      },
    );
  }
  if (mediaType === MediaTypes.ociIndex || mediaType === MediaTypes.dockerList) {
    if (!Array.isArray(m.manifests)) throw invalid('the index has no manifests');
    return {
      kind: 'index',
      mediaType,
      manifests: m.manifests.map((d, i) => descriptor(d, `manifests[${i}]`)),
    };
  }
  if (mediaType !== MediaTypes.ociManifest && mediaType !== MediaTypes.dockerManifest) {
    throw invalid(`manifest media type ${mediaType} is not supported`, { mediaType });
  }
  const config = descriptor(m.config, 'config');
  if (!Array.isArray(m.layers)) throw invalid('the manifest has no layers');
  const layers = m.layers.map((raw, i) => {
    const d = descriptor(raw, `layers[${i}]`);
    const compression = LAYER_TYPES[d.mediaType];
    if (compression === undefined) {
      throw invalid(`layer ${d.digest} has media type ${d.mediaType}, which is not supported`, {
        digest: d.digest,
        mediaType: d.mediaType,
      });
    }
    return { ...d, compression };
  });
  return { kind: 'image', mediaType, config, layers };
}

/**
 * Picks the platform's manifest from an index (OCI image index / Docker manifest list): os and
 * architecture must match; the variant too when asked for (arm64's `v8` also matches no variant).
 */
export function selectPlatform(
  manifests: Descriptor[],
  platform: Required<Pick<ImagePlatform, 'architecture' | 'os'>> & { variant?: string },
): Descriptor {
  const candidates = manifests.filter(
    (d) =>
      (d.mediaType === MediaTypes.ociManifest || d.mediaType === MediaTypes.dockerManifest) &&
      d.platform?.os === platform.os &&
      d.platform.architecture === platform.architecture,
  );
  const wanted = platform.variant;
  const match =
    wanted === undefined
      ? candidates[0]
      : (candidates.find((d) => d.platform?.variant === wanted) ??
        (platform.architecture === 'arm64' && wanted === 'v8'
          ? candidates.find((d) => d.platform?.variant === undefined)
          : undefined));
  if (!match) {
    const offered = manifests
      .map((d) => [d.platform?.os, d.platform?.architecture, d.platform?.variant].filter(Boolean).join('/'))
      .filter((s) => s.length > 0);
    throw new FlotillaError(
      'FLT_REGISTRY_PLATFORM_MISSING',
      `the image has no ${[platform.os, platform.architecture, wanted].filter(Boolean).join('/')} variant (it has ${offered.join(', ') || 'none'})`,
      { details: { offered } },
    );
  }
  return match;
}
