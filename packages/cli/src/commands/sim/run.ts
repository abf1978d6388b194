/** `flotilla sim`: a fleet of simulated devices in this process (docs/simulator.md). */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { FlotillaError } from '@flotilla/protocol';
import { Fleet, parseCrashSpec, parseDuration, parseDurationRange, parseRate } from '@flotilla/sim';
import type { CrashSpec, DurationRange, FleetSummary } from '@flotilla/sim';
import { serverUrlArg } from '../../args.js';
import { examples, usageError } from '../../help.js';
import type { CliIo } from '../../io.js';
import { Printer } from '../../output/printer.js';
import { handleShutdownSignals } from '../../process/signals.js';

interface SimOptions {
  devices: number;
  registrationKeyFile: string;
  installTime?: DurationRange;
  failureRate: number;
  crashAfter?: CrashSpec;
  latency: number;
  tags?: string;
  stateDir?: string;
  sourceAddresses?: number;
  duration?: number;
  progressInterval?: number;
}

const MAX_DEVICES = 100_000;

function wrap<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (e) {
      throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
    }
  };
}

function countArg(max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`a whole number from 1 to ${max}`);
    return n;
  };
}

export function registerSimCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('sim')
    .description(
      'run N simulated devices in this process that speak the real device protocol (enrollment, Ed25519 identities, ' +
        'tokens, WebSocket with heartbeats, TUF refresh and verification, update and app status reports), until stopped ' +
        '(Ctrl-C) or --duration; for load tests and demos',
    )
    .requiredOption('--devices <n>', `how many devices (1 to ${MAX_DEVICES})`, countArg(MAX_DEVICES))
    .requiredOption(
      '--registration-key-file <file>',
      'file holding a registration key (`flotilla regkeys create --auto-accept`; the devices stay pending otherwise)',
    )
    .option(
      '--install-time <range>',
      'how long an "install" takes: a duration or a range drawn uniformly, e.g. 2s..20s (default: 0, instant)',
      wrap((t) => parseDurationRange('--install-time', t)),
    )
    .option(
      '--failure-rate <rate>',
      'share of installs that fail (reported `failed` with FLT_RUNTIME_FAILED), e.g. 1%',
      wrap((t) => parseRate('--failure-rate', t)),
      0,
    )
    .option(
      '--crash-after <after:rate>',
      'share of committed apps that start to crash-loop this long after the commit (app status `restarting`, restarts counted), e.g. 20s:0.5%',
      wrap((t) => parseCrashSpec('--crash-after', t)),
    )
    .option(
      '--latency <duration>',
      "added before each device's HTTP request (enrollment, tokens, reports), e.g. 50ms",
      wrap((t) => parseDuration('--latency', t)),
      0,
    )
    .option('--tags <list>', 'tags every device enrolls with, comma-separated, e.g. sim,lab')
    .option(
      '--state-dir <dir>',
      'keep identities and TUF metadata here: a second run with the same directory reconnects the same devices ' +
        'without enrolling (default: a temporary directory under /dev/shm, removed at exit)',
    )
    .option(
      '--source-addresses <n>',
      'spread the WebSockets over 127.0.0.1 … 127.0.0.N (a loopback server only; default: one per 10,000 devices)',
      countArg(250),
    )
    .option(
      '--duration <duration>',
      'stop after this long (default: run until SIGINT/SIGTERM)',
      wrap((t) => parseDuration('--duration', t)),
    )
    .option(
      '--progress-interval <duration>',
      'how often the progress line is printed on stderr (default: 5s)',
      wrap((t) => parseDuration('--progress-interval', t)),
    )
    .addHelpText(
      'after',
      '\nThe devices talk to the global --server (else $FLOTILLA_SERVER), e.g. http://127.0.0.1:7070;\n' +
        'with the global --json the final summary is one JSON object on stdout.\n' +
        'The progress line (stderr): enrolled, connected, notified, installing, committed, failed,\n' +
        'crash-looping, restarts, errors. At the end (and with --json as one object): the same counters\n' +
        'and the errors by code. Raise the open-files limit for large fleets (ulimit -n 65536).',
    );
  cmd.action(async (opts: SimOptions, command: Command) => {
    const globals = command.optsWithGlobals<{ json?: boolean; server?: string }>();
    const out = new Printer(io.stdout, io.stderr, globals.json === true);
    const server =
      globals.server ?? (io.env.FLOTILLA_SERVER ? serverUrlArg(io.env.FLOTILLA_SERVER) : undefined);
    if (server === undefined) usageError(command, 'give the server the devices talk to: --server URL');
    const registrationKey = (
      await readFile(opts.registrationKeyFile, 'utf8').catch((cause: unknown) => {
        throw new FlotillaError('FLT_CONFIG_INVALID', `cannot read ${opts.registrationKeyFile}`, { cause });
      })
    ).trim();
    if (registrationKey === '')
      throw new FlotillaError('FLT_CONFIG_INVALID', `${opts.registrationKeyFile} is empty`);
    const temporary = opts.stateDir === undefined;
    const stateDir =
      opts.stateDir ?? (await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'flotilla-sim-')));
    const host = new URL(server).hostname;
    const loopback = /^127\./.test(host) || host === 'localhost';
    const addresses = loopback ? (opts.sourceAddresses ?? Math.max(1, Math.ceil(opts.devices / 10_000))) : 0;
    const fleet = new Fleet({
      serverUrl: server,
      registrationKey,
      devices: opts.devices,
      stateDir,
      installTime: opts.installTime ?? { minMs: 0, maxMs: 0 },
      failureRate: opts.failureRate,
      crashAfter: opts.crashAfter ?? null,
      latencyMs: opts.latency,
      tags:
        opts.tags === undefined
          ? []
          : opts.tags
              .split(',')
              .map((t) => t.trim())
              .filter((t) => t !== ''),
      localAddresses: Array.from({ length: addresses }, (_, i) => `127.0.0.${i + 1}`),
    });
    const progress = setInterval(() => {
      io.stderr.write(`${progressLine(fleet.summary())}\n`);
    }, opts.progressInterval ?? 5_000);
    const shutdown = handleShutdownSignals({
      signals: io.signals,
      exit: io.exit,
      log: (message) => io.stderr.write(`${message}\n`),
      stop: () => fleet.stop(),
    });
    try {
      const stopAfter =
        opts.duration === undefined
          ? null
          : new Promise<void>((resolve) => setTimeout(resolve, opts.duration).unref());
      await Promise.race([fleet.start(), shutdown.stopped]);
      await Promise.race(stopAfter === null ? [shutdown.stopped] : [shutdown.stopped, stopAfter]);
      await fleet.stop();
    } finally {
      clearInterval(progress);
      shutdown.dispose();
      await fleet.stop();
      if (temporary) await rm(stateDir, { recursive: true, force: true });
    }
    const summary = fleet.summary();
    out.result(summary, () => {
      out.line(progressLine(summary));
      const errors = Object.entries(summary.errors);
      if (errors.length > 0) out.line(`errors: ${errors.map(([code, n]) => `${code} ${n}`).join(', ')}`);
    });
  });
  examples(cmd, [
    'flotilla sim --devices 100 --server http://127.0.0.1:7070 --registration-key-file sim.key',
    'flotilla sim --devices 10000 --server http://127.0.0.1:7070 --registration-key-file sim.key \\\n' +
      '      --install-time 2s..20s --failure-rate 1% --crash-after 20s:0.5% --latency 50ms --state-dir /dev/shm/fleet',
    'flotilla sim --devices 20 --server http://127.0.0.1:7070 --registration-key-file sim.key --duration 2m --json',
  ]);
}

export function progressLine(s: FleetSummary): string {
  const errors = Object.values(s.errors).reduce((a, b) => a + b, 0);
  return (
    `devices ${s.devices} · enrolled ${s.enrolled + s.reused} · connected ${s.connected} · notified ${s.notified} · ` +
    `installing ${s.installing} · committed ${s.committed} · failed ${s.failed} · crash-looping ${s.crashLooping} ` +
    `(${s.restarts} restarts) · errors ${errors}`
  );
}
