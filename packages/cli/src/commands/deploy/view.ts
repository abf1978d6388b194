import { formatBytes } from '../../push/progress.js';

/** `web/1.4.0/<root>` → `1.4.0`; anything else as it is, `-` for none. */
export function releaseOfPath(path: string | null): string {
  if (path === null) return '-';
  const parts = path.split('/');
  return parts.length === 3 && parts[1] ? parts[1] : path;
}

export function progressText(p: { bytesDone: number | null; bytesTotal: number | null }): string {
  if (p.bytesDone === null || p.bytesTotal === null || p.bytesTotal === 0) return '-';
  const percent = Math.floor((100 * p.bytesDone) / p.bytesTotal);
  return `${percent}% of ${formatBytes(p.bytesTotal)}`;
}
