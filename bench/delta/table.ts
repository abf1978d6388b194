/** The results table (Markdown) and the targets checked against it. */
import type { FlotillaFigures } from './flotilla-measure.js';
import type { OstreeFigures } from './ostree-measure.js';

export interface SetResult {
  name: string;
  v2Bytes: number;
  flotilla: FlotillaFigures;
  ostree: OstreeFigures;
  patchBytes: number;
  tarZstBytes: number;
}

const mb = (n: number) => (n / 1e6).toFixed(2);
const sec = (ms: number) => (ms / 1000).toFixed(2);
const ratio = (a: number, b: number) => (b === 0 ? '—' : (a / b).toFixed(2));

function row(cells: (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

export function bytesTable(results: SetResult[]): string {
  const head = [
    'data set',
    'v2 tree MB',
    'full: Flotilla MB',
    'full: OSTree MB',
    'update: Flotilla MB',
    'update: OSTree pull MB',
    'OSTree static delta MB',
    'zstd patch MB (bound)',
    'Flotilla / OSTree pull',
    'Flotilla / bound',
    'OSTree pull / bound',
    'static delta / bound',
  ];
  const lines = [row(head), row(head.map((_, i) => (i === 0 ? '---' : '---:')))];
  const sum = { v2: 0, full: 0, ofull: 0, upd: 0, pull: 0, delta: 0, bound: 0 };
  for (const r of results) {
    sum.v2 += r.v2Bytes;
    sum.full += r.flotilla.fullBytes;
    sum.ofull += r.ostree.fullBytes;
    sum.upd += r.flotilla.updateBytes;
    sum.pull += r.ostree.updateBytes;
    sum.delta += r.ostree.deltaBytes;
    sum.bound += r.patchBytes;
    lines.push(
      row([
        r.name,
        mb(r.v2Bytes),
        mb(r.flotilla.fullBytes),
        mb(r.ostree.fullBytes),
        mb(r.flotilla.updateBytes),
        mb(r.ostree.updateBytes),
        mb(r.ostree.deltaBytes),
        mb(r.patchBytes),
        ratio(r.flotilla.updateBytes, r.ostree.updateBytes),
        ratio(r.flotilla.updateBytes, r.patchBytes),
        ratio(r.ostree.updateBytes, r.patchBytes),
        ratio(r.ostree.deltaBytes, r.patchBytes),
      ]),
    );
  }
  lines.push(
    row([
      '**sum**',
      mb(sum.v2),
      mb(sum.full),
      mb(sum.ofull),
      `**${mb(sum.upd)}**`,
      `**${mb(sum.pull)}**`,
      mb(sum.delta),
      mb(sum.bound),
      `**${ratio(sum.upd, sum.pull)}**`,
      ratio(sum.upd, sum.bound),
      ratio(sum.pull, sum.bound),
      ratio(sum.delta, sum.bound),
    ]),
  );
  return lines.join('\n');
}

export function timeTable(results: SetResult[]): string {
  const head = [
    'data set',
    'Flotilla full download s',
    'Flotilla fetch s',
    'Flotilla stage + switch s',
    'Flotilla update s',
    'Flotilla update, deltas cold s',
    'OSTree pull s',
    'OSTree checkout s',
    'OSTree update s',
    'delta fetch + apply + checkout s',
  ];
  const lines = [row(head), row(head.map((_, i) => (i === 0 ? '---' : '---:')))];
  for (const r of results) {
    const f = r.flotilla;
    const o = r.ostree;
    lines.push(
      row([
        r.name,
        sec(f.fullMs),
        sec(f.fetchMs),
        sec(f.applyMs),
        sec(f.fetchMs + f.applyMs),
        sec(f.coldMs),
        sec(o.pullMs),
        sec(o.checkoutMs),
        sec(o.pullMs + o.checkoutMs),
        sec(o.deltaFetchMs + o.deltaApplyMs + o.deltaCheckoutMs),
      ]),
    );
  }
  return lines.join('\n');
}

/** The targets, each with whether it is met. */
export function targets(results: SetResult[]): { target: string; met: boolean }[] {
  const total = (f: (r: SetResult) => number) => results.reduce((s, r) => s + f(r), 0);
  const upd = total((r) => r.flotilla.updateBytes);
  const pull = total((r) => r.ostree.updateBytes);
  const checks = [
    { target: `sum of update bytes ≤ 0.7 × OSTree pull (${ratio(upd, pull)})`, met: upd <= 0.7 * pull },
  ];
  for (const r of results) {
    const f = r.flotilla;
    const o = r.ostree;
    checks.push(
      { target: `${r.name}: update bytes ≤ OSTree pull`, met: f.updateBytes <= o.updateBytes },
      { target: `${r.name}: update bytes ≤ full download`, met: f.updateBytes <= f.fullBytes },
      {
        target: `${r.name}: update time ≤ OSTree pull + checkout`,
        met: f.fetchMs + f.applyMs <= o.pullMs + o.checkoutMs,
      },
    );
  }
  return checks;
}
