/** Validates a release's runtime configuration (protocol `api/runtime-config.ts`). */
import { FilesRuntimeConfig, FlotillaError, ProcessRuntimeConfig } from '@flotilla/protocol';
import type { TSchema } from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';
import type { ReleaseSpec } from '../update/types.js';

export function checkRuntimeConfig<T>(schema: TSchema, release: ReleaseSpec): T {
  if (Value.Check(schema, release.config)) return release.config as T;
  const problems = [...Value.Errors(schema, release.config)]
    .slice(0, 20)
    .map((e) => `${e.path || '/'}: ${e.message}`);
  throw new FlotillaError(
    'FLT_VALIDATION',
    `release ${release.targetPath}: invalid ${release.runtime} runtime configuration: ${problems.join('; ')}`,
    { details: { targetPath: release.targetPath, problems } },
  );
}

export const filesConfig = (release: ReleaseSpec) =>
  checkRuntimeConfig<FilesRuntimeConfig>(FilesRuntimeConfig, release).files;
export const processConfig = (release: ReleaseSpec) =>
  checkRuntimeConfig<ProcessRuntimeConfig>(ProcessRuntimeConfig, release).process;

/** The environment an app and its commands get: a minimal base, the release's env, and where it lives. */
export function appEnv(
  ctx: { app: string; release: ReleaseSpec; dataDir: string; releaseDir: string },
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    ...extra,
    FLOTILLA_APP: ctx.app,
    FLOTILLA_RELEASE: ctx.release.version,
    FLOTILLA_RELEASE_DIR: ctx.releaseDir,
    FLOTILLA_APP_DATA: ctx.dataDir,
  };
}
