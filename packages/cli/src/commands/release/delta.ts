import type { Command } from 'commander';
import {
  FlotillaError,
  PrecomputeDeltasResponse,
  RELEASE_DELTAS_ROUTE,
  parseDurationMs,
  routePath,
} from '@flotilla/protocol';
import { ApiClient } from '../../api/client.js';
import { durationArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import type { Printer } from '../../output/printer.js';
import { formatBytes } from '../../push/progress.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { bearerTokenFor } from '../../push/token.js';

/** Precomputing a large release at a high level takes longer than a JSON request usually may. */
const DEFAULT_TIMEOUT = '10m';

export function registerReleaseDelta(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('delta')
    .description(
      'precompute the file deltas a device on <from> fetches to update to <to> (cached on the server, ' +
        'like ostree static-delta generate), and show their size against fetching chunks',
    )
    .argument('<from>', 'the release devices run, e.g. web@1.0.0')
    .argument('<to>', 'the release they update to, e.g. web@2.0.0')
    .option(
      '--timeout <duration>',
      'how long to wait for the server (it goes on computing into its cache if this runs out)',
      durationArg,
      DEFAULT_TIMEOUT,
    )
    .action(async (fromRef: string, toRef: string, opts: { timeout: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const from = parseReleaseRef(fromRef);
      const to = parseReleaseRef(toRef);
      if (from.app !== to.app)
        throw new FlotillaError(
          'FLT_VALIDATION',
          `both releases must be of one app, got ${from.app} and ${to.app}`,
        );
      const client = await ctx.client();
      const patient = new ApiClient({
        baseUrl: client.baseUrl,
        token: await bearerTokenFor(ctx, client),
        timeoutMs: parseDurationMs(opts.timeout),
      });
      const result = await patient.request(
        'POST',
        routePath(RELEASE_DELTAS_ROUTE, { app: to.app, version: to.version }),
        PrecomputeDeltasResponse,
        { body: { from: from.version } },
      );
      ctx.out.result(result, () => printDeltas(ctx.out, result));
    });
  examples(cmd, [
    'flotilla release delta web@1.0.0 web@2.0.0',
    'flotilla release delta web@1.0.0 web@2.0.0 --json | jq .deltaBytes',
  ]);
}

const mb = (bytes: number) => (bytes / 1_000_000).toFixed(2);

function printDeltas(out: Printer, r: PrecomputeDeltasResponse): void {
  out.table(
    ['from', 'to', 'files', 'deltas', 'delta MB', 'plain MB', 'ratio', 'seconds'],
    [
      [
        r.from,
        r.to,
        String(r.files),
        String(r.deltas),
        mb(r.deltaBytes),
        mb(r.plainBytes),
        r.plainBytes > 0 ? (r.deltaBytes / r.plainBytes).toFixed(3) : '-',
        (r.ms / 1000).toFixed(1),
      ],
    ],
  );
  out.line(
    r.files === 0
      ? `no file of ${r.app}@${r.to} differs from the file at its path in ${r.from}`
      : `${r.deltas} of ${r.files} changed files get a delta; a device on ${r.from} fetches ` +
          `${formatBytes(r.deltaBytes)} for them instead of ${formatBytes(r.plainBytes)} of chunks`,
  );
}
