/**
 * Push progress on a terminal's stderr, one line rewritten in place: bytes read, chunks, what was
 * uploaded and the dedup ratio. Nothing is printed when stderr is not a terminal or with `--json`.
 */
import type { TextSink } from '../io.js';
import type { UploadStats } from './upload-sink.js';

const REDRAW_EVERY_MS = 100;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Share of the tree's bytes the server already had (0 = all uploaded, 1 = nothing uploaded). */
export function dedupRatio(stats: Readonly<UploadStats>): number {
  return stats.bytes === 0 ? 1 : 1 - stats.uploadedBytes / stats.bytes;
}

export function progressLine(stats: Readonly<UploadStats>): string {
  return (
    `${formatBytes(stats.bytes)} read (${stats.chunks} chunks, ${stats.objects} objects), ` +
    `${formatBytes(stats.uploadedBytes)} in ${stats.uploadedObjects} uploaded ` +
    `(${formatBytes(stats.wireBytes)} on the wire), dedup ${(dedupRatio(stats) * 100).toFixed(1)}%`
  );
}

export class PushProgress {
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly stderr: TextSink,
    private readonly enabled: boolean,
  ) {}

  update(stats: Readonly<UploadStats>): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDraw < REDRAW_EVERY_MS) return;
    this.lastDraw = now;
    this.draw(stats);
  }

  done(stats: Readonly<UploadStats>): void {
    if (!this.enabled) return;
    this.draw(stats);
    this.stderr.write('\n');
  }

  private draw(stats: Readonly<UploadStats>): void {
    this.drawn = true;
    this.stderr.write(`\r\x1b[2K${progressLine(stats)}`);
  }

  /** Ends the progress line so that an error message starts on a line of its own. */
  abort(): void {
    if (this.enabled && this.drawn) this.stderr.write('\n');
  }
}
