/**
 * How the docker runtime gets the images a release names onto the engine (issue 17). The runtime
 * calls `ensure` before it creates containers; a provider makes each image present with exactly the
 * id the signed release names, or throws a FlotillaError (FLT_IMAGE_MISSING when it cannot, or
 * FLT_HASH_MISMATCH when what it loaded has another id). Implementations: one that only checks the
 * engine (images loaded by other means), and one that loads them from the release's tree.
 * `prepare`, where a provider has it, begins loading while the agent still stages the release
 * (`Runtime.prepare`); `ensure` then waits for that load instead of starting another.
 */
import type Docker from 'dockerode';
import type { AppContext } from '../runtime.js';

export interface ImageProvider {
  /** `images`: image reference as the compose file names it → image id (`sha256:…`, the config digest). */
  ensure(
    docker: Docker,
    ctx: AppContext,
    images: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ): Promise<void>;
  /**
   * Begins loading the images the engine lacks from `ctx.files` (the cache) or `ctx.releaseDir`;
   * resolves once the files it needs are open (a directory may be renamed after), the load going
   * on in the background.
   */
  prepare?(
    docker: Docker,
    ctx: AppContext,
    images: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ): Promise<void>;
  /**
   * An update to a release naming `images` begins, before any of its files is there: what needs
   * none of them may begin (the release tree provider opens the engine's load). Never rejects.
   */
  expect?(docker: Docker, images: Readonly<Record<string, string>>): Promise<void>;
  /** The runtime closes: drops whatever `expect` began. */
  close?(): void;
}
