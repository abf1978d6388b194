/** How rollouts print for humans: a summary table, waves with counts, failure reasons. */
import type { Rollout, WaveCounts } from '@flotilla/protocol';
import { formatDurationMs } from '@flotilla/protocol';
import { relativeTime } from '../../output/format.js';
import type { Printer } from '../../output/printer.js';

export function doneOf(c: WaveCounts): number {
  return c.succeeded + c.failed + c.cancelled;
}

export function countsText(c: WaveCounts): string {
  const parts = (
    [
      ['pending', c.pending],
      ['notified', c.notified],
      ['downloading', c.downloading],
      ['installing', c.installing],
      ['soaking', c.soaking],
      ['succeeded', c.succeeded],
      ['failed', c.failed],
      ['cancelled', c.cancelled],
    ] as const
  )
    .filter(([, n]) => n > 0)
    .map(([name, n]) => `${name} ${n}`);
  return parts.length === 0 ? '-' : parts.join(', ');
}

export function stateText(r: Rollout): string {
  return r.pausedReason !== null && r.state !== 'running' ? `${r.state} (${r.pausedReason})` : r.state;
}

export function printRolloutList(out: Printer, items: readonly Rollout[]): void {
  out.table(
    ['id', 'release', 'state', 'wave', 'devices', 'succeeded', 'failed', 'created'],
    items.map((r) => {
      const sum = (k: keyof WaveCounts) => r.waves.reduce((n, w) => n + w.counts[k], 0);
      return [
        r.id,
        `${r.app}@${r.version}`,
        r.state,
        `${r.currentWave + 1}/${r.waves.length}`,
        String(r.matched),
        String(sum('succeeded')),
        String(sum('failed')),
        relativeTime(r.createdAt),
      ];
    }),
    'no rollouts',
  );
}

export function printRollout(out: Printer, r: Rollout): void {
  out.fields([
    ['id', r.id],
    ['release', `${r.app}@${r.version}`],
    ['state', stateText(r)],
    ['filter', r.filter],
    ['matched', String(r.matched)],
    [
      'gates',
      `success ≥ ${r.minSuccess}%, failure ≤ ${r.maxFailure}%, soak ${formatDurationMs(r.soakSeconds * 1000)}` +
        `${r.approveWaves ? ', approval between waves' : ''}${r.retry > 0 ? `, ${r.retry} retries` : ''}`,
    ],
    ['window', r.window ?? '-'],
    [
      'install time',
      r.stats.installP50Ms === null
        ? '-'
        : `p50 ${formatDurationMs(r.stats.installP50Ms)}, p95 ${formatDurationMs(r.stats.installP95Ms ?? 0)}`,
    ],
    ['created', `${r.createdAt} by ${r.createdBy}`],
  ]);
  out.table(
    ['wave', 'spec', 'size', 'state', 'devices per phase'],
    r.waves.map((w) => [String(w.index + 1), w.spec, String(w.size), w.state, countsText(w.counts)]),
  );
  if (r.stats.failuresByReason.length > 0)
    out.table(
      ['failure reason', 'devices'],
      r.stats.failuresByReason.map((f) => [f.reason, String(f.count)]),
    );
}
