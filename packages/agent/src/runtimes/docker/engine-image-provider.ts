/**
 * The image provider for images loaded by other means (`docker load`, a registry pull, a provider
 * that ran before): it only checks that the engine holds each image with exactly the id the signed
 * release names. Nothing is pulled; a missing image fails the start with FLT_IMAGE_MISSING.
 */
import { FlotillaError } from '@flotilla/protocol';
import type Docker from 'dockerode';
import type { AppContext } from '../runtime.js';
import { engineCall, statusOf } from './engine.js';
import type { ImageProvider } from './image-provider.js';

export class EngineImageProvider implements ImageProvider {
  async ensure(docker: Docker, ctx: AppContext, images: Readonly<Record<string, string>>): Promise<void> {
    const missing: string[] = [];
    for (const [ref, id] of Object.entries(images)) {
      try {
        const info = await engineCall(() => docker.getImage(id).inspect());
        if (info.Id !== id)
          throw new FlotillaError(
            'FLT_HASH_MISMATCH',
            `image ${ref}: the engine holds ${info.Id}, not ${id}`,
          );
      } catch (error) {
        if (statusOf(error) === 404) missing.push(`${ref} (${id})`);
        else throw error;
      }
    }
    if (missing.length > 0)
      throw new FlotillaError(
        'FLT_IMAGE_MISSING',
        `${ctx.app}: the Docker Engine does not hold ${missing.join(', ')}`,
        { details: { app: ctx.app, missing } },
      );
  }
}
