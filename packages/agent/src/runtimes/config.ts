/** Validates a release's runtime configuration (protocol `api/runtime-config.ts`). */
import { FlotillaError, runtimeConfigProblems } from '@flotilla/protocol';
import type { FilesRuntimeConfig, ProcessRuntimeConfig } from '@flotilla/protocol';
import type { ReleaseSpec } from '../model/release.js';

export function checkRuntimeConfig<T>(release: ReleaseSpec): T {
  const problems = runtimeConfigProblems(release.runtime, release.config);
  if (problems.length === 0) return release.config as T;
  throw new FlotillaError(
    'FLT_VALIDATION',
    `release ${release.targetPath}: invalid ${release.runtime} runtime configuration: ${problems.join('; ')}`,
    { details: { targetPath: release.targetPath, problems } },
  );
}

/** The files runtime's section; a release without one installs its tree and runs nothing. */
export const filesConfig = (release: ReleaseSpec) =>
  checkRuntimeConfig<FilesRuntimeConfig>(release).files ?? {};
export const processConfig = (release: ReleaseSpec) =>
  checkRuntimeConfig<ProcessRuntimeConfig>(release).process;

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
