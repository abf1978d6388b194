import type { Command } from 'commander';
import { FlotillaError, LIMITS } from '@flotilla/protocol';
import type { DeployRequest, DeployResponse, Deployment } from '@flotilla/protocol';
import type { ApiClient } from '../../api/client.js';
import { contextFor } from '../../context.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { shortId } from '../../output/format.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { deployRelease, getDeployment } from '../../push/releases-api.js';
import { resolveDeviceId } from '../devices/resolve-id.js';

interface AssignOptions {
  device?: string;
  filter?: string;
  wait: boolean;
}

/** How often a running deployment is polled while the command waits for it. */
const POLL_MS = 500;
/** Most device ids the human output lists. */
const LISTED = 20;

export function registerDeployAssign(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('assign', { isDefault: true })
    .description(
      'assign a release to one device or to every device a filter selects (the default: `deploy APP@VERSION …`); ' +
        'large deployments are assigned in batches in the background, and the command waits for the last batch ' +
        'with a progress line unless --no-wait',
    )
    .argument('<app@version>', 'the release, e.g. web@1.4.0')
    .option('--device <id>', 'one device: its id, or the unique prefix `devices ls` prints')
    .option(
      '--filter <rsql>',
      `devices selected by RSQL, e.g. "tags==canary;arch==arm64" (at most ${LIMITS.filterChars} characters)`,
    )
    .option(
      '--no-wait',
      'return as soon as the server accepted the deployment (it goes on in the background; follow it with `deploy status`)',
    )
    .action(async (ref: string, opts: AssignOptions, command: Command) => {
      if ((opts.device === undefined) === (opts.filter === undefined))
        usageError(command, 'give exactly one of --device or --filter');
      const ctx = contextFor(io, command);
      const { app, version } = parseReleaseRef(ref);
      const client = await ctx.client();
      const req: DeployRequest = { app, version };
      if (opts.device !== undefined) req.deviceId = await resolveDeviceId(client, opts.device);
      if (opts.filter !== undefined) req.filter = opts.filter;
      const accepted = await deployRelease(client, req);
      const deployment =
        opts.wait && accepted.deployment.state === 'running'
          ? await waitFor(client, accepted.deployment, (d) => {
              if (ctx.globals.json !== true)
                ctx.out.note(`assigning ${app}@${version}: ${d.processed}/${d.total} devices`);
            })
          : accepted.deployment;
      const res: DeployResponse = { ...accepted, deployment };
      if (deployment.state === 'failed')
        throw new FlotillaError(
          'FLT_DEPLOY_FAILED',
          `deployment ${deployment.id} stopped after ${deployment.assigned} of ${deployment.total} devices: ` +
            `${deployment.error?.code ?? ''} ${deployment.error?.message ?? ''}`.trim(),
          { details: { deployment } },
        );
      ctx.out.result(res, () => {
        if (res.devices.length === 0) {
          ctx.out.note(`no device matched; ${app}@${version} was assigned to none`);
          return;
        }
        const listed = res.devices.slice(0, LISTED).map(shortId).join(', ');
        const more = res.devices.length > LISTED ? `, … (${res.devices.length - LISTED} more)` : '';
        if (deployment.state === 'running')
          ctx.out.line(
            `deployment ${deployment.id} of ${app}@${version} to ${res.devices.length} device(s) goes on in the background ` +
              `(${deployment.processed} done): ${listed}${more}`,
          );
        else
          ctx.out.line(
            `assigned ${app}@${version} to ${deployment.assigned} device(s): ${listed}${more}` +
              (deployment.assigned < deployment.total
                ? ` (${deployment.total - deployment.assigned} no longer accepted, skipped)`
                : ''),
          );
        ctx.out.note(`follow it with: flotilla deploy status ${app}@${version}`);
      });
    });
  examples(cmd, [
    'flotilla deploy web@1.4.0 --device 3f2a9c0d1e4b',
    'flotilla deploy web@1.4.0 --filter "tags==canary;arch=in=(arm64,amd64)"',
    'flotilla deploy web@1.4.0 --filter "tags==prod" --no-wait --json',
  ]);
}

/** Polls the deployment until it is no longer running, reporting progress when it moves. */
async function waitFor(
  client: ApiClient,
  first: Deployment,
  progress: (d: Deployment) => void,
): Promise<Deployment> {
  let current = first;
  progress(current);
  while (current.state === 'running') {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const next = await getDeployment(client, current.id);
    if (next.processed !== current.processed || next.state !== 'running') progress(next);
    current = next;
  }
  return current;
}
