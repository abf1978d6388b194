/**
 * The one place where `release push --compose` turns each image reference of the compose file into
 * the image id the signed release pins (`sha256:…`, the image's config digest), and puts the images
 * in the release tree (`.flotilla/images/`, container-images.ts) so that devices need no registry:
 * their layers travel through the chunk store with deltas (docs/containers.md "Image delivery").
 * The images come from the local Docker Engine by default, or from `--images-from`.
 */
import { FlotillaError } from '@flotilla/protocol';
import Docker from 'dockerode';
import { stageImages } from './container-images.js';
import type { ImageSourceOptions } from './container-images.js';

export interface ComposeImageOptions {
  /** `DOCKER_HOST` of the engine that holds the images (default `$DOCKER_HOST`, else the local socket). */
  dockerHost?: string | undefined;
  /** Where the images come from (default: that engine). */
  source?: ImageSourceOptions | undefined;
}

export async function resolveComposeImages(
  refs: readonly string[],
  treeDir: string,
  options: ComposeImageOptions,
): Promise<Record<string, string>> {
  if (options.source !== undefined && options.source.from !== 'engine')
    return stageImages(refs, options.source, treeDir);
  const host = options.dockerHost ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  const docker = host.startsWith('tcp://')
    ? new Docker({
        host: new URL(host.replace(/^tcp:/, 'http:')).hostname,
        port: Number(new URL(host.replace(/^tcp:/, 'http:')).port || 2375),
      })
    : new Docker({ socketPath: host.replace(/^unix:\/\//, '') });
  const images: Record<string, string> = {};
  const missing: string[] = [];
  for (const ref of refs) {
    try {
      images[ref] = (await docker.getImage(ref).inspect()).Id;
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      if (status === 404) missing.push(ref);
      else
        throw new FlotillaError(
          'FLT_ENGINE_UNAVAILABLE',
          `cannot ask the Docker Engine at ${host} for the compose file's images: ${(error as Error).message}`,
          { cause: error },
        );
    }
  }
  if (missing.length > 0)
    throw new FlotillaError(
      'FLT_IMAGE_MISSING',
      `the local Docker Engine (${host}) does not hold ${missing.join(', ')}; build, pull or load ${missing.length === 1 ? 'it' : 'them'} first`,
      { details: { missing } },
    );
  const staged = await stageImages(refs, { from: 'engine', docker }, treeDir);
  for (const ref of refs)
    if (staged[ref] !== images[ref])
      throw new FlotillaError(
        'FLT_HASH_MISMATCH',
        `the image ${ref} changed on the engine while it was staged`,
      );
  return images;
}
