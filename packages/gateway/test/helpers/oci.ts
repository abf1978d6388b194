import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { run } from './services.js';

export interface LayerEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  mode?: number;
  uid?: number;
  gid?: number;
  content?: string | Buffer;
  linkname?: string;
  xattrs?: Record<string, string>;
  devmajor?: number;
  devminor?: number;
}

export interface Layer {
  tar: Buffer;
  blob: Buffer;
  mediaType: string;
  /** Hex of the blob's sha256 (its name in a registry's URLs). */
  digestHex: string;
}

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A layer tar written with tar-stream, in the given order (a layer's order is the test's input). */
export async function makeLayer(
  entries: LayerEntry[],
  compression: 'gzip' | 'none' = 'gzip',
): Promise<Layer> {
  const pack = tar.pack();
  const parts: Buffer[] = [];
  pack.on('data', (c) => parts.push(c as Buffer));
  const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    const content = e.content === undefined ? Buffer.alloc(0) : Buffer.from(e.content);
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date(1_700_000_000_000),
      ...(e.linkname === undefined ? {} : { linkname: e.linkname }),
      ...(e.devmajor === undefined ? {} : { devmajor: e.devmajor, devminor: e.devminor ?? 0 }),
      ...(e.xattrs
        ? { pax: Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v])) }
        : {}),
    };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (type === 'file') pack.entry(header, content, done);
      else pack.entry(header, done);
    });
  }
  pack.finalize();
  await ended;
  const tarBytes = Buffer.concat(parts);
  const blob = compression === 'gzip' ? gzipSync(tarBytes) : tarBytes;
  const mediaType = `application/vnd.oci.image.layer.v1.tar${compression === 'gzip' ? '+gzip' : ''}`;
  return { tar: tarBytes, blob, mediaType, digestHex: sha(blob).slice(7) };
}

export interface OciImage {
  architecture: string;
  layers: Layer[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

/**
 * Writes an OCI image layout (image-spec "Image Layout") holding `images` under `tag`: one image
 * gives a manifest, several an image index whose entries carry their platforms.
 */
export async function writeOciLayout(
  dir: string,
  tag: string,
  images: OciImage[],
): Promise<{ manifests: Descriptor[] }> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (bytes: Buffer | string): Promise<string> => {
    const digest = sha(bytes);
    await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
    return digest;
  };
  const manifests: Descriptor[] = [];
  for (const image of images) {
    const layerDescs: Descriptor[] = [];
    for (const layer of image.layers) {
      layerDescs.push({ mediaType: layer.mediaType, digest: await put(layer.blob), size: layer.blob.length });
    }
    const config = JSON.stringify({
      architecture: image.architecture,
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: image.layers.map((l) => sha(l.tar)) },
    });
    const configDesc = {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: await put(config),
      size: Buffer.byteLength(config),
    };
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: configDesc,
      layers: layerDescs,
    });
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: await put(manifest),
      size: Buffer.byteLength(manifest),
      platform: { architecture: image.architecture, os: 'linux' },
    });
  }
  let top: Descriptor;
  if (manifests.length === 1) {
    top = manifests[0] as Descriptor;
  } else {
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests,
    });
    top = {
      mediaType: 'application/vnd.oci.image.index.v1+json',
      digest: await put(index),
      size: Buffer.byteLength(index),
    };
  }
  const { platform: _platform, ...bare } = top;
  void _platform;
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...bare, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { manifests };
}

/**
 * Pushes an OCI layout's tag to a registry with skopeo (all platforms of an index), as OCI or as
 * Docker schema 2 (`v2s2`: Docker manifest and manifest list media types).
 */
export async function pushLayout(
  dir: string,
  tag: string,
  registryHost: string,
  repo: string,
  creds?: string,
  format: 'oci' | 'v2s2' = 'oci',
): Promise<void> {
  const args = ['copy', '--quiet', '--all', '--dest-tls-verify=false', '--format', format];
  if (creds) args.push('--dest-creds', creds);
  args.push(`oci:${dir}:${tag}`, `docker://${registryHost}/${repo}:${tag}`);
  await run('skopeo', args, { env: { ...process.env, HOME: dir } });
}
