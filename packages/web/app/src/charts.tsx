/**
 * Charts on uPlot (canvas, ~45 KB minified): bars for distributions, lines for live progress. Each
 * chart also renders its numbers as a visually hidden table, so screen readers get the data.
 */
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];

function useWidth(ref: React.RefObject<HTMLDivElement | null>): number {
  const width = useRef(600);
  if (ref.current) width.current = Math.max(240, ref.current.clientWidth);
  return width.current;
}

function useChart(
  ref: React.RefObject<HTMLDivElement | null>,
  make: (width: number) => { opts: uPlot.Options; data: uPlot.AlignedData },
  deps: unknown[],
) {
  const width = useWidth(ref);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const { opts, data } = make(Math.max(240, el.clientWidth || width));
    const chart = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() =>
      chart.setSize({ width: Math.max(240, el.clientWidth), height: opts.height }),
    );
    ro.observe(el);
    return () => {
      ro.disconnect();
      chart.destroy();
    };
  }, deps);
}

export interface BarSeries {
  label: string;
  values: number[];
}

/** Grouped bars: one group per category, one bar per series. */
export function BarChart({
  title,
  categories,
  series,
  height = 220,
  categoryLabel = 'category',
}: {
  title: string;
  categoryLabel?: string;
  categories: string[];
  series: BarSeries[];
  height?: number;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const key = JSON.stringify([categories, series]);
  useChart(
    ref,
    (width) => {
      const n = Math.max(1, series.length);
      const bars = uPlot.paths.bars?.({ size: [0.8 / n, 60], align: 0 });
      return {
        opts: {
          width,
          height,
          legend: { show: series.length > 1 },
          cursor: { show: false },
          scales: {
            x: { time: false, range: [-0.5, categories.length - 0.5] },
            y: { range: (_u, _min, max) => [0, Math.max(1, max)] },
          },
          axes: [
            {
              values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? (categories[v] ?? '') : '')),
              space: 30,
              incrs: [1],
            },
            { values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : '')) },
          ],
          series: [
            {},
            ...series.map((s, i) => ({
              label: s.label,
              fill: PALETTE[i % PALETTE.length],
              stroke: PALETTE[i % PALETTE.length],
              paths: bars,
              points: { show: false },
            })),
          ],
        },
        data: [categories.map((_, i) => i), ...series.map((s) => s.values)] as uPlot.AlignedData,
      };
    },
    [key, height],
  );
  return (
    <figure className="chart">
      <div ref={ref} role="img" aria-label={title} />
      <figcaption className="sr-only">
        <DataTable
          title={title}
          head={[categoryLabel, ...series.map((s) => s.label)]}
          rows={categories.map((c, i) => [c, ...series.map((s) => s.values[i] ?? 0)])}
        />
      </figcaption>
    </figure>
  );
}

/** Lines over time (x: seconds since epoch). */
export function LineChart({
  title,
  times,
  series,
  height = 220,
  yMax,
}: {
  title: string;
  times: number[];
  series: BarSeries[];
  height?: number;
  yMax?: number;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const key = JSON.stringify([times, series]);
  useChart(
    ref,
    (width) => ({
      opts: {
        width,
        height,
        scales: { y: { range: (_u, _min, max) => [0, yMax ?? Math.max(1, max)] } },
        series: [
          {},
          ...series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length], width: 2 })),
        ],
      },
      data: [times, ...series.map((s) => s.values)] as uPlot.AlignedData,
    }),
    [key, height, yMax],
  );
  const last = times.length - 1;
  return (
    <figure className="chart">
      <div ref={ref} role="img" aria-label={title} />
      <figcaption className="sr-only">
        <DataTable
          title={`${title} (latest)`}
          head={['series', 'value']}
          rows={series.map((s) => [s.label, s.values[last] ?? 0])}
        />
      </figcaption>
    </figure>
  );
}

function DataTable({ title, head, rows }: { title: string; head: string[]; rows: (string | number)[][] }) {
  return (
    <table>
      <caption>{title}</caption>
      <thead>
        <tr>
          {head.map((h, i) => (
            <th key={i} scope="col">
              {h}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={i}>
            {r.map((c, j) => (
              <td key={j}>{c}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
