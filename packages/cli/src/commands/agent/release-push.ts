import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parseDurationMs } from '@flotilla/protocol';
import { agentVersion } from '../../agent-version.js';
import { durationArg } from '../../args.js';
import { buildAgentBundle } from '../../bundle/build-bundle.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { pushRelease } from '../../push/push-release.js';
import { checkVersion } from '../../push/release-ref.js';
import { bearerTokenFor } from '../../push/token.js';
import { httpTransport } from '../../push/transport.js';
import { DEFAULT_TARGETS_EXPIRES, expiresIn } from '../../signing/expiry.js';
import { keyPassphrase } from '../../signing/passphrase.js';
import { keyFileOptions, keysDirOf } from '../keys/options.js';
import type { KeyFileOptions } from '../keys/options.js';

/** The app agent releases are pushed under (the loader's AGENT_APP). */
export const AGENT_APP = 'flotilla-agent';

interface AgentPushOptions extends KeyFileOptions {
  version?: string;
  bundle?: string;
  probeTimeout: string;
  expires: string;
}

/**
 * The release's configuration: the `files` runtime installs the tree, and its health probe hands
 * it to the loader and waits for the loader's verdict (docs/agent-lifecycle.md).
 */
export function agentReleaseConfig(probeTimeoutMs: number): Record<string, unknown> {
  return {
    files: {
      health: {
        command: ['./bin/flotilla-agent', 'loader-probe'],
        timeoutMs: probeTimeoutMs,
        intervalMs: 1000,
        windowMs: 1000,
      },
    },
  };
}

export function registerAgentRelease(parent: Command, io: CliIo): void {
  const group = parent
    .command('release')
    .description('agent releases: the agent itself as the app flotilla-agent');
  const cmd = keyFileOptions(
    group
      .command('push')
      .description(
        'package this agent (its bundle) as a release of the app flotilla-agent, signed with the offline targets key',
      ),
  )
    .option('--version <version>', 'the release version (default: this checkout’s)')
    .option('--bundle <dir>', 'push this prebuilt bundle (flotilla agent bundle) instead of building one')
    .option(
      '--probe-timeout <duration>',
      "how long the release's health probe waits for the loader's verdict (at most 10m)",
      durationArg,
      '10m',
    )
    .option(
      '--expires <duration>',
      'lifetime of the new targets metadata',
      durationArg,
      DEFAULT_TARGETS_EXPIRES,
    )
    .action(async (opts: AgentPushOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const version = checkVersion(opts.version ?? agentVersion());
      const probeTimeoutMs = Math.min(parseDurationMs(opts.probeTimeout), 600_000);
      const passphrase = await keyPassphrase(io, opts.passphraseStdin);
      const temp = opts.bundle === undefined ? await mkdtemp(join(tmpdir(), 'flotilla-agent-bundle-')) : null;
      try {
        const dir =
          opts.bundle ?? (await buildAgentBundle({ outDir: join(temp as string, 'tree'), version })).dir;
        const client = await ctx.client();
        const transport = httpTransport(client, await bearerTokenFor(ctx, client));
        const result = await pushRelease(client, transport, {
          dir,
          app: AGENT_APP,
          version,
          runtime: 'files',
          config: agentReleaseConfig(probeTimeoutMs),
          keysDir: keysDirOf(ctx, opts),
          passphrase,
          targetsExpires: expiresIn(opts.expires),
        });
        ctx.out.result(result, () => {
          ctx.out.line(`pushed ${AGENT_APP}@${version} and signed targets v${result.targetsVersion}`);
          ctx.out.fields([
            ['target', result.targetPath],
            ['deploy', `flotilla deploy ${AGENT_APP}@${version} --filter 'tags==canary'`],
          ]);
        });
      } finally {
        if (temp !== null) await rm(temp, { recursive: true, force: true });
      }
    });
  examples(cmd, [
    'flotilla agent release push --version 0.2.0',
    'flotilla agent release push --version 0.2.1 --bundle ./flotilla-agent',
  ]);
}
