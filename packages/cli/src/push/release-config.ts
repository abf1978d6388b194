import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { FlotillaError, MAX_JSON_DEPTH, jsonDepthExceeds, runtimeConfigProblems } from '@flotilla/protocol';
import type { RuntimeKind } from '@flotilla/protocol';
import { readCompose } from './compose.js';
import { resolveComposeImages } from './compose-images.js';
import type { ImageSourceOptions } from './container-images.js';

const MAX_CONFIG_BYTES = 256 * 1024;

/**
 * `--compose`: the docker runtime's configuration from a compose file (unsupported keys refused
 * with the list), its images pinned by id (compose-images.ts), checked like any configuration.
 */
export async function composeReleaseConfig(
  cwd: string,
  file: string,
  treeDir: string,
  dockerHost: string | undefined,
  env: Readonly<Record<string, string | undefined>> = {},
  source?: ImageSourceOptions,
): Promise<Record<string, unknown>> {
  const project = await readCompose(cwd, file, env);
  project.config.docker.images = await resolveComposeImages(project.refs, treeDir, { dockerHost, source });
  const problems = runtimeConfigProblems('docker', project.config);
  if (problems.length > 0)
    throw new FlotillaError('FLT_VALIDATION', `invalid compose project (${file}); nothing was uploaded`, {
      details: { problems },
    });
  return project.config;
}

/**
 * The release's runtime configuration: the JSON object in `--config-file`, with `--entrypoint`
 * as `process.command` (the process runtime's argv), checked against the runtime's schema before
 * anything is uploaded or signed (FLT_VALIDATION listing every problem). The server checks again
 * when the release is created, the agent before installing.
 */
export async function releaseConfig(opts: {
  cwd: string;
  runtime: RuntimeKind;
  configFile?: string | undefined;
  entrypoint?: readonly string[] | undefined;
}): Promise<Record<string, unknown> | undefined> {
  let config: Record<string, unknown> | undefined;
  if (opts.configFile !== undefined) config = await readConfigFile(resolve(opts.cwd, opts.configFile));
  if (opts.entrypoint !== undefined && opts.entrypoint.length > 0) {
    if (opts.runtime !== 'process') {
      throw new FlotillaError('FLT_VALIDATION', '--entrypoint is for --runtime process');
    }
    const section = config?.process;
    if (section !== undefined && (typeof section !== 'object' || section === null || Array.isArray(section)))
      throw new FlotillaError('FLT_VALIDATION', 'the config file\'s "process" must be an object');
    config = { ...config, process: { ...section, command: [...opts.entrypoint] } };
  }
  const problems = runtimeConfigProblems(opts.runtime, config ?? {});
  if (problems.length > 0) {
    const source = opts.configFile === undefined ? 'no --config-file' : opts.configFile;
    throw new FlotillaError(
      'FLT_VALIDATION',
      `invalid ${opts.runtime} runtime configuration (${source}); nothing was uploaded`,
      { details: { problems } },
    );
  }
  return config;
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new FlotillaError(
      code === 'ENOENT' ? 'FLT_NOT_FOUND' : 'FLT_IO',
      `cannot read config file ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES)
    throw new FlotillaError(
      'FLT_LIMIT_EXCEEDED',
      `config file ${path} is larger than ${MAX_CONFIG_BYTES} bytes`,
    );
  // Signing walks the config recursively (canonical JSON), and the server refuses it past the bound.
  if (jsonDepthExceeds(text))
    throw new FlotillaError(
      'FLT_JSON_TOO_DEEP',
      `config file ${path} nests arrays and objects more than ${MAX_JSON_DEPTH} deep`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new FlotillaError('FLT_BAD_JSON', `config file ${path} is not JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new FlotillaError('FLT_VALIDATION', `config file ${path} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}
