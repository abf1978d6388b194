import { resolve } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { RuntimeKind } from '@flotilla/protocol';
import { durationArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { dedupRatio, formatBytes, PushProgress } from '../../push/progress.js';
import { pushRelease } from '../../push/push-release.js';
import { checkAppName, checkVersion } from '../../push/release-ref.js';
import { composeReleaseConfig, releaseConfig } from '../../push/release-config.js';
import { releaseSecrets } from '../../push/release-secrets.js';
import { sourceDirectory } from '../../push/source-dir.js';
import { stageImages } from '../../push/container-images.js';
import type { ImageSourceOptions } from '../../push/container-images.js';
import { bearerTokenFor } from '../../push/token.js';
import { httpTransport } from '../../push/transport.js';
import { DEFAULT_TARGETS_EXPIRES, expiresIn } from '../../signing/expiry.js';
import { keyPassphrase } from '../../signing/passphrase.js';
import { keyFileOptions, keysDirOf } from '../keys/options.js';
import type { KeyFileOptions } from '../keys/options.js';

interface PushOptions extends KeyFileOptions {
  app: string;
  version?: string;
  appVersion?: string;
  runtime: RuntimeKind;
  entrypoint?: string[];
  configFile?: string;
  compose?: string;
  secret: string[];
  secretEnv: string[];
  expires: string;
  image: string[];
  imagesFrom?: ImageSourceOptions;
}

/** `--images-from`: engine | archive:PATH | oci:PATH | registry[:URL]. */
function imagesFromArg(value: string): ImageSourceOptions {
  if (value === 'engine') return { from: 'engine' };
  if (value === 'registry') return { from: 'registry' };
  if (value.startsWith('registry:')) return { from: 'registry', url: value.slice(9) };
  if (value.startsWith('archive:') && value.length > 8) return { from: 'archive', path: value.slice(8) };
  if (value.startsWith('oci:') && value.length > 4) return { from: 'oci', path: value.slice(4) };
  throw new InvalidArgumentError('must be engine, archive:PATH, oci:PATH, registry or registry:URL');
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

const PUSHABLE: readonly RuntimeKind[] = ['files', 'process', 'docker'];

function runtimeArg(value: string): RuntimeKind {
  const runtime = PUSHABLE.find((r) => r === value);
  if (!runtime) throw new InvalidArgumentError(`must be one of ${PUSHABLE.join(', ')}`);
  return runtime;
}

export function registerReleasePush(parent: Command, io: CliIo): void {
  const cmd = keyFileOptions(
    parent
      .command('push')
      .description(
        'upload a directory as a release (only the chunks the server lacks) and sign it with the offline targets key',
      )
      .argument('<dir>', 'the directory that becomes the release tree')
      .argument(
        '[command...]',
        'after --: the command the process runtime starts, e.g. -- python3 -m http.server 8000',
      ),
  )
    .requiredOption('--app <name>', 'app name, e.g. web')
    .option('--version <version>', 'release version, e.g. 1.4.0 (required)')
    .addOption(new Option('--app-version <version>', 'the same as --version').hideHelp())
    .option('--runtime <kind>', 'how devices run it: files, process or docker', runtimeArg, 'files')
    .option(
      '--compose <file>',
      'a docker-compose file: the release runs as containers (--runtime docker; images from the local Docker Engine, see docs/containers.md)',
    )
    .option(
      '--entrypoint <argv...>',
      'argv the process runtime starts, e.g. ./bin/web serve (for arguments starting with -, give the command after --)',
    )
    .option('--config-file <file>', 'runtime configuration as a JSON object (see docs/cli.md)')
    .option(
      '--secret <NAME=SOURCE>',
      'a secret from @FILE or - (stdin), e.g. API_KEY=@api-key.txt; sealed to each device, never signed or shown (repeatable)',
      collect,
      [],
    )
    .option(
      '--secret-env <NAME[=VAR]>',
      "a secret from the CLI's environment variable VAR (default NAME) (repeatable)",
      collect,
      [],
    )
    .option(
      '--image <ref>',
      'a container image to carry in the tree under .flotilla/images (repeatable; see docs/containers.md)',
      collect,
      [],
    )
    .option(
      '--images-from <source>',
      'where --image refs come from: engine (default), archive:PATH (docker save), oci:PATH (OCI layout), registry or registry:URL',
      imagesFromArg,
    )
    .option(
      '--expires <duration>',
      'lifetime of the new targets metadata',
      durationArg,
      DEFAULT_TARGETS_EXPIRES,
    )
    .action(async (dir: string, after: string[], opts: PushOptions, command: Command) => {
      const ctx = contextFor(io, command);
      if (after.length > 0 && opts.entrypoint !== undefined)
        command.error('error: give the command either with --entrypoint or after --, not both');
      const entrypoint = after.length > 0 ? after : opts.entrypoint;
      const app = checkAppName(opts.app);
      const given = opts.version ?? opts.appVersion;
      if (given === undefined) command.error("error: required option '--version <version>' not specified");
      const version = checkVersion(given);
      const source = await sourceDirectory(io.cwd, dir);
      if (opts.compose !== undefined) {
        if (opts.configFile !== undefined || entrypoint !== undefined)
          command.error(
            'error: --compose makes the configuration; give no --config-file or --entrypoint with it',
          );
        if (command.getOptionValueSource('runtime') === 'cli' && opts.runtime !== 'docker')
          command.error('error: --compose is for --runtime docker');
        opts.runtime = 'docker';
      }
      if (opts.imagesFrom !== undefined && opts.image.length === 0 && opts.compose === undefined)
        command.error('error: --images-from needs at least one --image or --compose');
      const imagesFrom: ImageSourceOptions = opts.imagesFrom ?? { from: 'engine' };
      if (imagesFrom.from === 'archive' || imagesFrom.from === 'oci')
        imagesFrom.path = resolve(io.cwd, imagesFrom.path);
      let images: Record<string, string> | undefined;
      if (opts.image.length > 0) images = await stageImages(opts.image, imagesFrom, source);
      const baseConfig =
        opts.compose !== undefined
          ? await composeReleaseConfig(io.cwd, opts.compose, source, io.env.DOCKER_HOST, io.env, imagesFrom)
          : await releaseConfig({
              cwd: io.cwd,
              runtime: opts.runtime,
              configFile: opts.configFile,
              entrypoint,
            });
      const passphrase = await keyPassphrase(io, opts.passphraseStdin);
      const secrets = await releaseSecrets(baseConfig, {
        cwd: io.cwd,
        runtime: opts.runtime,
        secret: opts.secret,
        secretEnv: opts.secretEnv,
        env: io.env,
        stdin: io.stdin,
        stdinTaken: opts.passphraseStdin === true,
      });
      const config = secrets.config;
      const client = await ctx.client();
      const transport = httpTransport(client, await bearerTokenFor(ctx, client));
      const progress = new PushProgress(io.stderr, !ctx.out.json && io.stderr.isTTY === true);
      const result = await pushRelease(
        client,
        transport,
        {
          dir: source,
          app,
          version,
          runtime: opts.runtime,
          config,
          secrets,
          keysDir: keysDirOf(ctx, opts),
          passphrase,
          targetsExpires: expiresIn(opts.expires),
        },
        (stats) => progress.update(stats),
      ).catch((error: unknown) => {
        progress.abort();
        throw error;
      });
      progress.done(result.upload);
      ctx.out.result(images === undefined ? result : { ...result, images }, () => {
        const { upload, tree } = result;
        ctx.out.line(`pushed ${app}@${version} and signed targets v${result.targetsVersion}`);
        ctx.out.fields([
          ['target', result.targetPath],
          [
            'tree',
            `${tree.files} files, ${tree.dirs} dirs, ${formatBytes(tree.bytes)}, ${tree.chunks} chunks`,
          ],
          [
            'uploaded',
            `${upload.uploadedObjects} of ${upload.objects} objects, ${formatBytes(upload.uploadedBytes)} ` +
              `(${formatBytes(upload.wireBytes)} on the wire)`,
          ],
          ['dedup', `${(dedupRatio(upload) * 100).toFixed(1)}% already on the server`],
          ...Object.entries(images ?? {}).map(([ref, id]) => ['image', `${ref} ${id}`] as [string, string]),
          ...(result.release.secrets
            ? [
                [
                  'secrets',
                  `${result.release.secrets.map((s) => s.name).join(', ')} (values sealed to each device)`,
                ] as [string, string],
              ]
            : []),
        ]);
      });
    });
  examples(cmd, [
    'flotilla release push ./site --app web --version 1.4.0',
    'flotilla release push ./build --app api --version 2.0.1 --runtime process --entrypoint ./bin/api serve',
    'flotilla release push ./site --app web --version 1.0.1 --runtime process -- python3 -m http.server 8000',
    'flotilla release push ./build --app api --version 2.0.2 --runtime process --config-file api.json',
    'flotilla release push ./shop --app shop --version 2.0.0 --compose docker-compose.yml',
    'echo "$PASSPHRASE" | flotilla release push ./site --app web --version 1.4.1 --passphrase-stdin --json',
    'flotilla release push ./build --app api --version 2.1.0 --runtime process --config-file api.json --secret API_KEY=@api-key.txt',
    'flotilla release push ./shop --app shop --version 2.0.0 --image shop/web:2.0.0 --images-from archive:web.tar',
    'DB_PASSWORD=… flotilla release push ./build --app api --version 2.1.1 --runtime process --entrypoint ./bin/api --secret-env DB_PASSWORD',
  ]);
}
