/**
 * The configuration table of docs/operations.md, generated from SERVER_CONFIG (a test checks the
 * docs against it, so a key cannot be declared and left undocumented, or documented wrongly).
 */
import type { ConfigKeySpec } from '@flotilla/node-kit';
import { SERVER_CONFIG, envNameOf } from './fields.js';

const DURATION_UNITS: [string, number][] = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
];

function showDuration(ms: number): string {
  if (ms === 0) return '0';
  const unit = DURATION_UNITS.find(([, size]) => ms % size === 0);
  return unit ? `${ms / unit[1]}${unit[0]}` : `${ms}ms`;
}

function showBytes(bytes: number): string {
  const unit = (
    [
      ['GiB', 1024 ** 3],
      ['MiB', 1024 ** 2],
      ['KiB', 1024],
    ] as const
  ).find(([, size]) => bytes >= size && bytes % size === 0);
  return unit ? `\`${bytes}\` (${bytes / unit[1]} ${unit[0]})` : `\`${bytes}\``;
}

const DERIVED_DEFAULTS: Record<string, string> = {
  database: '`sqlite:<dataDir>/flotilla.db`',
  dataDir: '`./.flotilla/server` (made absolute)',
  adminPassword: 'generated',
  publicUrl: 'unset',
  agentDownloadsDir: '`<dataDir>/agent-downloads`',
};

/** One row per key: key, environment, flag, default, meaning (plain cells, no padding). */
export function serverConfigTableRows(): string[][] {
  const flags = new Map(SERVER_CONFIG.cliOptions.map((o) => [o.key, o.flags]));
  const rows: string[][] = [];
  for (const [key, spec] of Object.entries(SERVER_CONFIG.keys) as [string, ConfigKeySpec][]) {
    const fallback = (spec.schema as { default?: unknown }).default;
    let shown: string;
    if (DERIVED_DEFAULTS[key] !== undefined) shown = DERIVED_DEFAULTS[key];
    else if (spec.kind === 'duration' && typeof fallback === 'number')
      shown = `\`${showDuration(fallback)}\``;
    else if (spec.unit === 'bytes' && typeof fallback === 'number') shown = showBytes(fallback);
    else shown = `\`${String(fallback)}\``;
    const flag = flags.get(key);
    rows.push([
      `\`${key}\``,
      spec.envOnly === true ? `\`${envNameOf(key)}\` **only**` : `\`${envNameOf(key)}\``,
      key === 'listenHost' || key === 'listenPort'
        ? '`--listen host:port`'
        : flag !== undefined
          ? `\`${flag}\``
          : '',
      shown,
      spec.doc.replace(/([^\s(]*<[^>\s]+>[^\s),]*)/g, '`$1`'),
    ]);
    if (key === 'listenPort')
      rows.push(['—', '`FLOTILLA_LISTEN` (`host:port`, `[v6]:port`, `:port`)', '', '', 'both at once']);
  }
  return rows;
}

/** The table as Markdown. */
export function serverConfigTable(): string {
  const lines = [
    '| key | environment | flag | default | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...serverConfigTableRows().map((cells) => `| ${cells.join(' | ')} |`),
  ];
  return `${lines.join('\n')}\n`;
}
