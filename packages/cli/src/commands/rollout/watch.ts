/**
 * `rollout watch`: polls the rollout until it completes or is aborted (or, with `--until-paused`,
 * stops). On a terminal, one progress bar per wave (cli-progress) with its counts per phase and the
 * failure reasons; otherwise one line per change, and with `--json` one Rollout object per change.
 */
import cliProgress from 'cli-progress';
import type { Rollout } from '@flotilla/protocol';
import type { ApiClient } from '../../api/client.js';
import { getRollout } from '../../api/rollouts.js';
import type { TextSink } from '../../io.js';
import { countsText, doneOf, stateText } from './view.js';

export interface RolloutWatchOptions {
  id: string;
  intervalMs: number;
  untilPaused: boolean;
  json: boolean;
  stdout: TextSink;
  stderr: TextSink;
}

const FINAL = new Set(['completed', 'aborted']);

export async function watchRollout(client: ApiClient, opts: RolloutWatchOptions): Promise<Rollout> {
  const display: Display = opts.json
    ? new Lines(opts.stdout, (r) => JSON.stringify(r))
    : isTerminal(opts.stderr)
      ? new Bars(opts.stderr)
      : new Lines(opts.stderr, summary);
  try {
    for (;;) {
      const r = await getRollout(client, opts.id);
      display.update(r);
      if (FINAL.has(r.state)) return r;
      if (opts.untilPaused && (r.state === 'paused' || r.state === 'waiting-approval')) return r;
      await new Promise((resolve) => setTimeout(resolve, opts.intervalMs));
    }
  } finally {
    display.stop();
  }
}

function summary(r: Rollout): string {
  const waves = r.waves.map((w) => `wave ${w.index + 1}: ${countsText(w.counts)}`).join(' | ');
  const failures = r.stats.failuresByReason.map((f) => `${f.reason} ${f.count}`).join(', ');
  return `${r.id} ${stateText(r)} | ${waves}${failures ? ` | failures: ${failures}` : ''}`;
}

interface Display {
  update(r: Rollout): void;
  stop(): void;
}

/** A line whenever what it prints changed. */
class Lines implements Display {
  private last = '';
  constructor(
    private readonly out: TextSink,
    private readonly line: (r: Rollout) => string,
  ) {}
  update(r: Rollout): void {
    const text = this.line({ ...r, updatedAt: '' });
    if (text === this.last) return;
    this.last = text;
    this.out.write(`${this.line(r)}\n`);
  }
  stop(): void {}
}

/** A bar per wave (devices done of its size), a status line, a failure-reasons line. */
class Bars implements Display {
  private readonly multi: cliProgress.MultiBar;
  private readonly waves: cliProgress.SingleBar[] = [];
  private status: cliProgress.SingleBar | undefined;
  private failures: cliProgress.SingleBar | undefined;
  private stopped = false;

  constructor(stream: NodeJS.WritableStream) {
    this.multi = new cliProgress.MultiBar(
      {
        stream,
        format: ' {label} [{bar}] {value}/{total} | {detail}',
        hideCursor: true,
        clearOnComplete: false,
        autopadding: true,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  update(r: Rollout): void {
    const info = { format: ' {detail}' };
    this.status ??= this.multi.create(1, 0, { detail: '' }, info);
    this.status.update(0, { detail: `${r.id} ${r.app}@${r.version}: ${stateText(r)}` });
    r.waves.forEach((w, i) => {
      const payload = {
        label: `wave ${w.index + 1} (${w.spec})`,
        detail: `${w.state}: ${countsText(w.counts)}`,
      };
      const total = Math.max(1, w.size);
      const bar = this.waves[i];
      if (bar) {
        bar.setTotal(total);
        bar.update(doneOf(w.counts), payload);
      } else this.waves.push(this.multi.create(total, doneOf(w.counts), payload));
    });
    const reasons = r.stats.failuresByReason.map((f) => `${f.reason} ${f.count}`).join(', ');
    this.failures ??= this.multi.create(1, 0, { detail: '' }, info);
    this.failures.update(0, { detail: reasons ? `failures: ${reasons}` : '' });
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
