import type { Command } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import type { Image, ImageJob } from '@flotilla/protocol';
import { getImageJob, pullImage, showImage } from '../../api/images.js';
import type { ApiClient } from '../../api/client.js';
import { contextFor } from '../../context.js';
import type { CommandContext } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { imageFields, jobLine } from './view.js';

interface PullOptions {
  platform?: string;
  arch?: string;
  private?: boolean;
  user?: string[];
  group?: string[];
  wait: boolean;
}

const POLL_MS = 1000;

const collect = (value: string, previous: string[] = []): string[] => [
  ...previous,
  ...value.split(',').filter(Boolean),
];

export function registerImagePull(parent: Command, io: CliIo): void {
  const cmd = parent
    .command('pull')
    .description(
      'import an image from a registry onto a platform and show its progress; an image already converted answers at once, and pulls of the same image share one job',
    )
    .argument('<image>', "[LOCATION/]NAME[:TAG] (LOCATION: one of the gateway configuration's locations)")
    .option('--platform <name>', 'platform to deliver to (default: the configured default platform)')
    .option('--arch <arch>', 'architecture to pick from a multi-platform image (default amd64)')
    .option('--private', 'visible only to you, the --user and --group lists and the platform admins')
    .option('--user <names>', 'users who may see a private image (repeatable, comma-separated)', collect)
    .option('--group <names>', 'groups (gateway configuration "groups") who may see it', collect)
    .option('--no-wait', 'queue the import and return without following it')
    .action(async (image: string, opts: PullOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const started = await pullImage(client, {
        image,
        ...(opts.platform === undefined ? {} : { platform: opts.platform }),
        ...(opts.arch === undefined ? {} : { arch: opts.arch }),
        ...(opts.private === true ? { private: true } : {}),
        ...(opts.user ? { users: opts.user } : {}),
        ...(opts.group ? { groups: opts.group } : {}),
      });
      if (started.job === null || !opts.wait) {
        if (started.job === null)
          ctx.out.note(`${started.image.image} is already on ${started.image.platform}`);
        else ctx.out.note(`queued import job ${started.job.id}`);
        ctx.out.result(started, () => ctx.out.fields(imageFields(started.image)));
        return;
      }
      const job = await follow(ctx, client, started.job);
      if (job.state === 'failed')
        throw new FlotillaError(
          'FLT_IMAGE_IMPORT_FAILED',
          `import of ${job.image} failed: ${job.error ?? 'unknown error'}`,
          {
            details: { job: job.id, attempts: job.attempts },
          },
        );
      const done: Image = await showImage(client, {
        image: job.image,
        platform: job.platform,
        arch: job.arch,
      });
      ctx.out.result({ image: done, job }, () => ctx.out.fields(imageFields(done)));
    });
  examples(cmd, [
    'flotilla images pull busybox:1.36',
    'flotilla images pull hub/library/alpine:3.20 --platform cluster --arch arm64',
    'flotilla images pull lab/tools:2 --private --group physics',
  ]);
}

/** Polls the job until it ends, printing each change of phase or progress to stderr. */
async function follow(ctx: CommandContext, client: ApiClient, first: ImageJob): Promise<ImageJob> {
  let job = first;
  let last = '';
  for (;;) {
    const line = jobLine(job);
    if (line !== last) {
      ctx.out.note(`${job.image}: ${line}`);
      last = line;
    }
    if (job.state === 'done' || job.state === 'failed') return job;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    job = await getImageJob(client, job.id);
  }
}
