import type { Command } from 'commander';
import type { DeployStatus } from '@flotilla/protocol';
import { parseDurationMs } from '@flotilla/protocol';
import { durationArg } from '../../args.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { relativeTime, shortId } from '../../output/format.js';
import type { Printer } from '../../output/printer.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { deployStatus } from '../../push/releases-api.js';
import { progressText, releaseOfPath } from './view.js';
import { watchDeployment } from './watch.js';

interface StatusOptions {
  watch?: boolean;
  interval: string;
  timeout?: string;
}

export function registerDeployStatus(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('status')
    .description('where a release stands across the fleet: devices per update phase, with errors')
    .argument('<app@version>', 'the release, e.g. web@1.4.0')
    .option(
      '--watch',
      'follow it live until every device has finished (progress bars; with --json one JSON line per change); exit 1 if any failed',
    )
    .option('--interval <duration>', 'with --watch: how often to ask the server', durationArg, '1s')
    .option('--timeout <duration>', 'with --watch: give up after this long (default: wait)', durationArg)
    .action(async (ref: string, opts: StatusOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const { app, version } = parseReleaseRef(ref);
      const client = await ctx.client();
      if (opts.watch) {
        const status = await watchDeployment(client, {
          app,
          version,
          intervalMs: parseDurationMs(opts.interval),
          timeoutMs: opts.timeout === undefined ? undefined : parseDurationMs(opts.timeout),
          json: ctx.out.json,
          stdout: io.stdout,
          stderr: io.stderr,
        });
        if (!ctx.out.json) printStatus(ctx.out, status);
        return;
      }
      const status = await deployStatus(client, app, version);
      ctx.out.result(status, () => printStatus(ctx.out, status));
    });
  examples(cmd, [
    'flotilla deploy status web@1.4.0',
    'flotilla deploy status web@1.4.0 --watch',
    'flotilla deploy status web@1.4.0 --watch --json --timeout 10m',
    'flotilla deploy status web@1.4.0 --json | jq .phases',
  ]);
}

function printStatus(out: Printer, status: DeployStatus): void {
  const phases = Object.entries(status.phases).map(([phase, n]) => `${phase} ${n}`);
  out.line(`${status.app}@${status.version}: ${phases.length === 0 ? 'on no device' : phases.join(', ')}`);
  // Deployments still assigning in the background (or stopped by an error) come first.
  for (const d of status.deployments ?? []) {
    if (d.state === 'running')
      out.line(`deployment ${d.id}: assigning, ${d.processed} of ${d.total} devices done`);
    else if (d.state === 'failed')
      out.line(
        `deployment ${d.id}: failed after ${d.assigned} of ${d.total} devices: ${d.error?.code ?? ''} ${d.error?.message ?? ''}`.trimEnd(),
      );
  }
  out.table(
    ['device', 'phase', 'running', 'progress', 'error', 'updated'],
    status.devices.map((d) => [
      shortId(d.deviceId),
      d.phase ?? '-',
      releaseOfPath(d.current),
      progressText(d),
      d.error ? `${d.error.code}: ${d.error.message}` : '-',
      relativeTime(d.updatedAt),
    ]),
    'no device is assigned this release',
  );
}
