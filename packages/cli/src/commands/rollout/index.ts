/**
 * `flotilla rollout …`: staged rollouts (docs/rollouts.md) — create, ls, show, watch, devices,
 * pause, resume, approve, abort, why. Every command prints a table for humans and `--json`.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { LIMITS, parseDurationMs } from '@flotilla/protocol';
import type { CreateRolloutRequest, RolloutAction, RolloutPhase, RolloutState } from '@flotilla/protocol';
import { durationArg } from '../../args.js';
import {
  createRollout,
  explainRolloutDevice,
  getRollout,
  listRollouts,
  rolloutAction,
  rolloutDevices,
} from '../../api/rollouts.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { relativeTime } from '../../output/format.js';
import { parseReleaseRef } from '../../push/release-ref.js';
import { resolveDeviceId } from '../devices/resolve-id.js';
import { printRollout, printRolloutList, stateText } from './view.js';
import { watchRollout } from './watch.js';

const STATES: readonly RolloutState[] = ['running', 'paused', 'waiting-approval', 'completed', 'aborted'];
const PHASES: readonly RolloutPhase[] = [
  'pending',
  'notified',
  'downloading',
  'installing',
  'soaking',
  'succeeded',
  'failed',
  'cancelled',
];

/** `95%` or `95`: a percent from 0 to 100. */
export function percentArg(value: string): number {
  const m = /^(\d{1,3}(?:\.\d{1,2})?)%?$/.exec(value.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 0 && n <= 100)) throw new InvalidArgumentError('must be a percent from 0 to 100, e.g. 95%');
  return n;
}

/** `1%,10%,50,100%`: cumulative wave sizes, percents or device counts. */
export function wavesArg(value: string): string[] {
  const waves = value
    .split(',')
    .map((w) => w.trim())
    .filter((w) => w !== '');
  if (waves.length === 0 || waves.some((w) => !/^(\d+(\.\d+)?%|\d+)$/.test(w)))
    throw new InvalidArgumentError(
      'must be a comma-separated list of percents or counts, e.g. 1%,10%,50%,100%',
    );
  return waves;
}

function intArg(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > max)
      throw new InvalidArgumentError(`must be a whole number from 0 to ${max}`);
    return n;
  };
}

function choiceArg<T extends string>(choices: readonly T[]) {
  return (value: string): T => {
    const found = choices.find((c) => c === value);
    if (!found) throw new InvalidArgumentError(`must be one of ${choices.join(', ')}`);
    return found;
  };
}

interface CreateOptions {
  release: string;
  filter: string;
  waves: string[];
  minSuccess?: number;
  maxFailure?: number;
  soak?: string;
  approveWaves?: boolean;
  window?: string;
  includeNewDevices?: boolean;
  retry?: number;
}

export function registerRolloutCommands(program: Command, io: CliIo): void {
  const group = program
    .command('rollout')
    .description('staged rollouts: deliver a release wave by wave, gated on how the devices behave');

  const create = group
    .command('create')
    .description('start a rollout (the server answers at once and works through the waves in the background)')
    .requiredOption('--release <app@version>', 'the signed release, e.g. web@1.4.0')
    .requiredOption(
      '--filter <rsql>',
      `devices selected by RSQL, as deploy --filter (at most ${LIMITS.filterChars} characters)`,
    )
    .requiredOption(
      '--waves <list>',
      'cumulative wave sizes, percents of the matched devices or counts: 1%,10%,50%,100%',
      wavesArg,
    )
    .option(
      '--min-success <percent>',
      'share of a wave that must succeed before the next starts (default 100%)',
      percentArg,
    )
    .option(
      '--max-failure <percent>',
      'share of a wave that may fail before the rollout pauses (default 0%)',
      percentArg,
    )
    .option(
      '--soak <duration>',
      'how long an installed app must stay healthy to count as a success (default 0s)',
      durationArg,
    )
    .option('--approve-waves', 'wait for `rollout approve` before each wave after the first')
    .option(
      '--window <window>',
      'assign only inside this maintenance window, e.g. "Mon-Fri 01:00-05:00 Europe/Helsinki"',
    )
    .option('--include-new-devices', 'devices that match the filter later join the current wave')
    .option('--retry <n>', 'retries per failed device, with backoff from 30s (default 0)', intArg(10))
    .action(async (opts: CreateOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const { app, version } = parseReleaseRef(opts.release);
      const req: CreateRolloutRequest = { app, version, filter: opts.filter, waves: opts.waves };
      if (opts.minSuccess !== undefined) req.minSuccess = opts.minSuccess;
      if (opts.maxFailure !== undefined) req.maxFailure = opts.maxFailure;
      if (opts.soak !== undefined) req.soakSeconds = Math.round(parseDurationMs(opts.soak) / 1000);
      if (opts.approveWaves) req.approveWaves = true;
      if (opts.window !== undefined) req.window = opts.window;
      if (opts.includeNewDevices) req.includeNewDevices = true;
      if (opts.retry !== undefined) req.retry = opts.retry;
      const r = await createRollout(await ctx.client(), req);
      ctx.out.result(r, () => {
        ctx.out.line(
          `rollout ${r.id} of ${r.app}@${r.version}: ${r.matched} device(s) in ${r.waves.length} wave(s) (${r.waves
            .map((w) => w.size)
            .join(', ')})`,
        );
        ctx.out.note(`follow it with: flotilla rollout watch ${r.id}`);
      });
    });
  examples(create, [
    'flotilla rollout create --release web@1.4.0 --filter "tags==prod;arch==arm64" --waves 1%,10%,50%,100% --min-success 95% --max-failure 2%',
    'flotilla rollout create --release web@1.4.0 --filter "tags==prod" --waves 10,100% --soak 10m --approve-waves --window "Mon-Fri 01:00-05:00 Europe/Helsinki" --retry 3',
  ]);

  const ls = group
    .command('ls')
    .description('rollouts, newest first')
    .option('--state <state>', `only rollouts in this state (${STATES.join(', ')})`, choiceArg(STATES))
    .action(async (opts: { state?: RolloutState }, command: Command) => {
      const ctx = contextFor(io, command);
      const list = await listRollouts(await ctx.client(), opts.state);
      ctx.out.result(list, () => printRolloutList(ctx.out, list.items));
    });
  examples(ls, ['flotilla rollout ls', 'flotilla rollout ls --state paused --json']);

  const show = group
    .command('show')
    .description('a rollout: state, waves with devices per phase, install times, failures by reason')
    .argument('<rollout>', 'the rollout id (rol_…)')
    .action(async (id: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const r = await getRollout(await ctx.client(), id);
      ctx.out.result(r, () => printRollout(ctx.out, r));
    });
  examples(show, [
    'flotilla rollout show rol_3f2a9c0d1e4b5a6f',
    'flotilla rollout show rol_3f2a9c0d1e4b5a6f --json | jq .waves',
  ]);

  const watch = group
    .command('watch')
    .description(
      'follow a rollout live until it completes or is aborted: a progress bar per wave with counts per phase and failure reasons (with --json one object per change)',
    )
    .argument('<rollout>', 'the rollout id')
    .option('--interval <duration>', 'how often to ask the server', durationArg, '1s')
    .option('--until-paused', 'also stop when it pauses or waits for an approval')
    .action(async (id: string, opts: { interval: string; untilPaused?: boolean }, command: Command) => {
      const ctx = contextFor(io, command);
      const r = await watchRollout(await ctx.client(), {
        id,
        intervalMs: parseDurationMs(opts.interval),
        untilPaused: opts.untilPaused === true,
        json: ctx.out.json,
        stdout: io.stdout,
        stderr: io.stderr,
      });
      if (!ctx.out.json) printRollout(ctx.out, r);
    });
  examples(watch, [
    'flotilla rollout watch rol_3f2a9c0d1e4b5a6f',
    'flotilla rollout watch rol_3f2a9c0d1e4b5a6f --until-paused --json',
  ]);

  const devices = group
    .command('devices')
    .description("a rollout's devices with their wave, phase and reason")
    .argument('<rollout>', 'the rollout id')
    .option('--wave <n>', 'only this wave (1 = the first)', intArg(1000))
    .option('--phase <phase>', `only this phase (${PHASES.join(', ')})`, choiceArg(PHASES))
    .option('--limit <n>', 'at most this many (default 100)', intArg(LIMITS.pageSizeMax))
    .option('--after <deviceId>', 'the page after this device id')
    .action(
      async (
        id: string,
        opts: { wave?: number; phase?: RolloutPhase; limit?: number; after?: string },
        command: Command,
      ) => {
        const ctx = contextFor(io, command);
        const page = await rolloutDevices(await ctx.client(), id, {
          ...(opts.wave !== undefined && { wave: Math.max(0, opts.wave - 1) }),
          ...(opts.phase !== undefined && { phase: opts.phase }),
          ...(opts.limit !== undefined && { limit: opts.limit }),
          ...(opts.after !== undefined && { after: opts.after }),
        });
        ctx.out.result(page, () => {
          ctx.out.table(
            ['device', 'wave', 'phase', 'reason', 'retries', 'since'],
            page.items.map((d) => [
              d.deviceId,
              String(d.wave + 1),
              d.phase,
              d.reason ?? '-',
              String(d.retries),
              relativeTime(d.since),
            ]),
            'no devices',
          );
          if (page.next !== null) ctx.out.note(`more: --after ${page.next}`);
        });
      },
    );
  examples(devices, ['flotilla rollout devices rol_3f2a9c0d1e4b5a6f --phase failed']);

  const actions: [RolloutAction, string][] = [
    ['pause', 'stop assigning devices (those already updating go on)'],
    [
      'resume',
      'go on after a pause: devices whose update failed before the switch are tried again and the other failures accepted; with --version every failed device of the started waves gets that (fixed) release',
    ],
    ['approve', 'let the next wave start (rollouts created with --approve-waves)'],
    [
      'abort',
      'end the rollout: devices that have not started stay on their release; those updating finish or roll back',
    ],
  ];
  for (const [action, description] of actions) {
    const cmd = group.command(action).description(description).argument('<rollout>', 'the rollout id');
    if (action === 'resume')
      cmd.option('--version <version>', 'continue with this (fixed) release of the same app');
    cmd.action(async (id: string, opts: { version?: string }, command: Command) => {
      const ctx = contextFor(io, command);
      const r = await rolloutAction(await ctx.client(), id, action, opts.version);
      ctx.out.result(r, () => ctx.out.line(`rollout ${r.id}: ${stateText(r)}`));
    });
    examples(cmd, [
      `flotilla rollout ${action} rol_3f2a9c0d1e4b5a6f${action === 'resume' ? ' --version 1.4.1' : ''}`,
    ]);
  }

  const why = group
    .command('why')
    .description('where one device stands in a rollout and why, in one sentence')
    .argument('<rollout>', 'the rollout id')
    .argument('<device>', 'the device: its id, or the unique prefix `devices ls` prints')
    .action(async (id: string, device: string, _opts: unknown, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const answer = await explainRolloutDevice(client, id, await resolveDeviceId(client, device));
      ctx.out.result(answer, () => {
        ctx.out.line(`${answer.deviceId}: ${answer.text}`);
        if (answer.logTail !== undefined) ctx.out.line(answer.logTail);
      });
    });
  examples(why, ['flotilla rollout why rol_3f2a9c0d1e4b5a6f 3f2a9c0d1e4b']);
  examples(group, [
    'flotilla rollout create --release web@1.4.0 --filter "tags==prod" --waves 1%,10%,50%,100%',
    'flotilla rollout watch rol_3f2a9c0d1e4b5a6f',
    'flotilla rollout why rol_3f2a9c0d1e4b5a6f 3f2a9c0d1e4b',
  ]);
}
