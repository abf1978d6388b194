/**
 * `deploy status --watch`: polls the deployment status until every device assigned the release
 * has finished (committed, failed or rolled back). On a terminal, one progress bar per device
 * (cli-progress); otherwise one line per change, and with `--json` one JSON object per change.
 */
import cliProgress from 'cli-progress';
import { FlotillaError } from '@flotilla/protocol';
import type { DeployStatus, DeployStatusDevice } from '@flotilla/protocol';
import type { ApiClient } from '../../api/client.js';
import type { TextSink } from '../../io.js';
import { shortId } from '../../output/format.js';
import { deployStatus } from '../../push/releases-api.js';
import { progressText, releaseOfPath } from './view.js';

const FINISHED = new Set(['committed', 'failed', 'rolled-back']);
const FAILED = new Set(['failed', 'rolled-back']);

export interface WatchOptions {
  app: string;
  version: string;
  intervalMs: number;
  /** Give up (FLT_DEVICE_TIMEOUT) after this long; undefined waits as long as it takes. */
  timeoutMs: number | undefined;
  json: boolean;
  stdout: TextSink;
  stderr: TextSink;
  signal?: AbortSignal;
}

/** True once the device is done with this release, one way or the other (or was assigned another). */
export function deviceFinished(status: DeployStatus, d: DeployStatusDevice): boolean {
  if (d.desired !== status.targetPath) return true;
  return d.phase !== null && FINISHED.has(d.phase);
}

/** Resolves with the final status when every device has finished; FLT_DEPLOY_FAILED if any failed. */
export async function watchDeployment(client: ApiClient, opts: WatchOptions): Promise<DeployStatus> {
  const display = opts.json
    ? new ChangeLines(opts.stdout, (st, d) => JSON.stringify({ app: st.app, version: st.version, ...d }))
    : isTerminal(opts.stderr)
      ? new Bars(opts.stderr)
      : new ChangeLines(opts.stderr, (_st, d) => `${shortId(d.deviceId)}  ${describe(d)}`);
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  try {
    for (;;) {
      const status = await deployStatus(client, opts.app, opts.version);
      display.update(status);
      if (status.devices.length === 0)
        throw new FlotillaError('FLT_NOT_FOUND', `no device is assigned ${opts.app}@${opts.version}`, {
          details: { app: opts.app, version: opts.version },
        });
      if (status.devices.every((d) => deviceFinished(status, d))) {
        display.stop();
        const failed = status.devices.filter(
          (d) => d.desired === status.targetPath && d.phase !== null && FAILED.has(d.phase),
        );
        if (failed.length > 0)
          throw new FlotillaError(
            'FLT_DEPLOY_FAILED',
            `${opts.app}@${opts.version} failed on ${failed.length} of ${status.devices.length} devices`,
            {
              details: {
                problems: failed.map(
                  (d) =>
                    `${shortId(d.deviceId)}: ${d.phase ?? ''} ${d.error ? `${d.error.code}: ${d.error.message}` : ''}`,
                ),
              },
            },
          );
        return status;
      }
      if (Date.now() >= deadline)
        throw new FlotillaError(
          'FLT_DEVICE_TIMEOUT',
          `${opts.app}@${opts.version} has not finished on every device within the --timeout`,
        );
      await sleep(opts.intervalMs, opts.signal);
    }
  } finally {
    display.stop();
  }
}

interface Display {
  update(status: DeployStatus): void;
  stop(): void;
}

/** The fields whose change is worth a line. */
function stateOf(d: DeployStatusDevice): string {
  return JSON.stringify([d.phase, d.current, d.bytesDone, d.bytesTotal, d.error?.code ?? null]);
}

/** One line per device whose state changed, in the format `line` gives (JSON or text). */
class ChangeLines implements Display {
  private readonly seen = new Map<string, string>();
  constructor(
    private readonly out: TextSink,
    private readonly line: (status: DeployStatus, d: DeployStatusDevice) => string,
  ) {}
  update(status: DeployStatus): void {
    for (const d of status.devices) {
      const state = stateOf(d);
      if (this.seen.get(d.deviceId) === state) continue;
      this.seen.set(d.deviceId, state);
      this.out.write(`${this.line(status, d)}\n`);
    }
  }
  stop(): void {}
}

function describe(d: DeployStatusDevice): string {
  const parts = [d.phase ?? 'waiting', `running ${releaseOfPath(d.current)}`];
  const progress = progressText(d);
  if (progress !== '-') parts.push(progress);
  if (d.error) parts.push(`${d.error.code}: ${d.error.message}`);
  return parts.join(', ');
}

/** One bar per device: bytes downloaded of the update, then its phase until it finishes. */
class Bars implements Display {
  private readonly multi: cliProgress.MultiBar;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private stopped = false;

  constructor(stream: NodeJS.WritableStream) {
    this.multi = new cliProgress.MultiBar(
      {
        stream,
        format: ' {device} [{bar}] {percentage}% | {phase} {detail}',
        hideCursor: true,
        clearOnComplete: false,
        autopadding: true,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(status: DeployStatus): void {
    for (const d of status.devices) {
      const finished = deviceFinished(status, d);
      const total = d.bytesTotal !== null && d.bytesTotal > 0 ? d.bytesTotal : 1;
      const value = finished ? total : d.bytesTotal !== null && d.bytesTotal > 0 ? (d.bytesDone ?? 0) : 0;
      const payload = {
        device: shortId(d.deviceId),
        phase: d.phase ?? 'waiting',
        detail: d.error ? `${d.error.code}: ${d.error.message}` : `running ${releaseOfPath(d.current)}`,
      };
      const bar = this.bars.get(d.deviceId);
      if (bar) {
        bar.setTotal(total);
        bar.update(value, payload);
      } else {
        this.bars.set(d.deviceId, this.multi.create(total, value, payload));
      }
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.multi.stop();
  }
}

function isTerminal(sink: TextSink): sink is TextSink & NodeJS.WritableStream {
  return sink.isTTY === true && typeof (sink as { cursorTo?: unknown }).cursorTo === 'function';
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
