import { FLOTILLA_VERSION } from '@flotilla/protocol';

/** The agent bundle's version (replaced by esbuild when the bundle is built), else the source tree's. */
export function agentVersion(): string {
  return process.env.FLOTILLA_BUNDLE_VERSION ?? FLOTILLA_VERSION;
}
