/**
 * `flotilla events`: the server's event stream (docs/events.md). Without --follow it prints what the
 * event log holds after --after (default: all of it) and exits; with --follow it goes on printing
 * new events and reconnects by itself (Last-Event-ID), so nothing the log still holds is missed.
 */
import type { Command } from 'commander';
import { EVENT_TYPE_PATTERN, FlotillaError, STREAM_GAP_TYPE } from '@flotilla/protocol';
import type { StreamEvent } from '@flotilla/protocol';
import { readEventStream } from '../../api/events.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';

interface EventsOptions {
  follow?: boolean;
  type: string[];
  device: string[];
  after?: number;
}

/** Waits between reconnections: 1 s, doubling up to 15 s; reset by each event received. */
const RECONNECT_MIN_MS = 1_000;
const RECONNECT_MAX_MS = 15_000;
/** No byte for this long (the server sends a heartbeat every 15 s by default): reconnect. */
const IDLE_TIMEOUT_MS = 60_000;

const TYPE = new RegExp(EVENT_TYPE_PATTERN);

function typeArg(value: string, previous: string[]): string[] {
  if (!TYPE.test(value) || value.length > 128)
    throw new FlotillaError(
      'FLT_VALIDATION',
      `--type ${value}: give a type (device.online), a prefix ending in .* (device.update.*) or *`,
    );
  return [...previous, value];
}

function deviceArg(value: string, previous: string[]): string[] {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(value))
    throw new FlotillaError('FLT_VALIDATION', `--device ${value}: not a device id`);
  return [...previous, value];
}

function afterArg(value: string): number {
  if (!/^[0-9]{1,15}$/.test(value))
    throw new FlotillaError(
      'FLT_VALIDATION',
      `--after ${value}: give an event sequence number (0: from the oldest held)`,
    );
  return Number(value);
}

/** The event's data as `key=value` pairs, long values shortened. */
function summary(data: Record<string, unknown>): string {
  return Object.entries(data)
    .map(([k, v]) => {
      const text = typeof v === 'string' ? v : JSON.stringify(v);
      return `${k}=${text.length > 80 ? `${text.slice(0, 77)}...` : text}`;
    })
    .join(' ');
}

export function humanLine(e: StreamEvent): string {
  const subject = [e.deviceId ?? '', e.app ?? '', e.rollout ?? ''].filter((s) => s !== '').join(' ');
  return [String(e.seq).padStart(6), e.at, e.type.padEnd(26), subject, summary(e.data)]
    .filter((s) => s !== '')
    .join('  ');
}

export function registerEventsCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('events')
    .description(
      'print the event stream: device presence, enrollment, update phases, deployments, rollouts, audit',
    )
    .option('-f, --follow', 'keep printing new events; reconnects by itself, missing nothing the log holds')
    .option(
      '--type <pattern>',
      'only this type: exact (device.online), prefix (device.update.*) or *; repeatable',
      typeArg,
      [],
    )
    .option('--device <id>', 'only events about this device; repeatable', deviceArg, [])
    .option(
      '--after <seq>',
      'start after this sequence number (default: from the oldest held; with --follow, only new events)',
      afterArg,
    )
    .addHelpText(
      'after',
      '\nOutput: one line per event (sequence number, time, type, device/app/rollout, data); with --json one\n' +
        'JSON object per line (StreamEvent: seq, type, at, deviceId, app, rollout, data). Audit events\n' +
        '(audit.*) are shown to admins only. When the events after --after were pruned, a stream.gap\n' +
        'event comes first. Stop --follow with Ctrl-C.',
    )
    .action(async (opts: EventsOptions, command: Command) => {
      const ctx = contextFor(io, command);
      const client = await ctx.client();
      const follow = opts.follow === true;
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      io.signals.on('SIGINT', onSignal);
      io.signals.on('SIGTERM', onSignal);
      const print = (e: StreamEvent) => {
        if (ctx.out.json) io.stdout.write(`${JSON.stringify(e)}\n`);
        else if (e.type === STREAM_GAP_TYPE)
          ctx.out.warn(
            `events were pruned from the server's log before they could be read (${summary(e.data)})`,
          );
        else ctx.out.line(humanLine(e));
      };
      let position: number | null = opts.after ?? (follow ? null : 0);
      let wait = RECONNECT_MIN_MS;
      let printed = 0;
      try {
        for (;;) {
          let received = false;
          const caughtUp = new AbortController();
          position = await readEventStream(client, {
            after: position,
            types: opts.type,
            devices: opts.device,
            signal: follow ? stop.signal : AbortSignal.any([stop.signal, caughtUp.signal]),
            idleTimeoutMs: IDLE_TIMEOUT_MS,
            onEvent: (e) => {
              received = true;
              printed += 1;
              print(e);
            },
            onCaughtUp: () => {
              if (!follow) caughtUp.abort();
            },
          });
          if (!follow) {
            if (!caughtUp.signal.aborted && !stop.signal.aborted)
              throw new FlotillaError(
                'FLT_NETWORK',
                'the event stream ended before the server had sent all events',
              );
            if (printed === 0 && !ctx.out.json) ctx.out.note('no events');
            return;
          }
          if (stop.signal.aborted) return;
          if (received) wait = RECONNECT_MIN_MS;
          ctx.out.note(
            `event stream lost; reconnecting in ${wait / 1000} s${position === null ? '' : ` after ${position}`}`,
          );
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, wait);
            stop.signal.addEventListener('abort', () => {
              clearTimeout(timer);
              resolve();
            });
          });
          if (stop.signal.aborted) return;
          wait = Math.min(RECONNECT_MAX_MS, wait * 2);
        }
      } finally {
        io.signals.off('SIGINT', onSignal);
        io.signals.off('SIGTERM', onSignal);
      }
    });
  examples(cmd, [
    'flotilla events',
    'flotilla events -f --type "device.update.*" --type device.online --type device.offline',
    'flotilla events -f --device 3f2a9c0d1e4b5a6f7e8d9c0b1a2f3e4d --json',
    'flotilla events --after 5120 --json',
  ]);
}
