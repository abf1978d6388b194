/**
 * The one place where `release push --compose` turns each image reference of the compose file into
 * the image id the signed release pins (`sha256:…`, the image's config digest). Today: the image as
 * the local Docker Engine holds it (`docker build` / `docker pull` / `docker load` it first). Image
 * delivery through the chunk store (issue 17 part 2) stages the images into `treeDir` here.
 */
import { FlotillaError } from '@flotilla/protocol';
import Docker from 'dockerode';

export interface ComposeImageOptions {
  /** `DOCKER_HOST` of the engine that holds the images (default `$DOCKER_HOST`, else the local socket). */
  dockerHost?: string | undefined;
}

export async function resolveComposeImages(
  refs: readonly string[],
  treeDir: string,
  options: ComposeImageOptions,
): Promise<Record<string, string>> {
  void treeDir;
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
  return images;
}
