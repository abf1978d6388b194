/**
 * Reports to `POST /api/v1/device/reports`: best effort, in order, queued while offline and
 * retried with backoff. Bounded: when full, progress reports (downloading) are dropped first. An
 * app's process status replaces the one of that app still waiting (only the newest matters).
 */
import { isAppStatusReport, isFlotillaError, retryAfterMsOf } from '@flotilla/protocol';
import type { DeviceReport, UpdateReport } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { sleep } from '../util/sleep.js';

export interface ReportQueueOptions {
  send: (report: DeviceReport, signal: AbortSignal) => Promise<void>;
  logger: Logger;
  /** Most reports kept while the server is unreachable (default 1000). */
  maxQueued?: number;
  /** First retry delay; doubles up to `maxRetryMs` (defaults 1 s and 60 s). */
  retryMs?: number;
  maxRetryMs?: number;
}

export class ReportQueue {
  private readonly queued: DeviceReport[] = [];
  private draining: Promise<void> | null = null;
  private readonly controller = new AbortController();

  constructor(private readonly options: ReportQueueOptions) {}

  get size(): number {
    return this.queued.length;
  }

  push(report: DeviceReport): void {
    const max = this.options.maxQueued ?? 1000;
    // The head may be in flight (sent, not yet shifted): never drop it.
    const first = this.draining ? 1 : 0;
    if (isAppStatusReport(report)) {
      const older = this.queued.findIndex(
        (r, i) => i >= first && isAppStatusReport(r) && r.app === report.app,
      );
      if (older >= 0) this.queued.splice(older, 1);
    }
    if (this.queued.length >= max) {
      const progress = this.queued.findIndex(
        (r, i) => i >= first && (isAppStatusReport(r) || r.phase === 'downloading'),
      );
      this.queued.splice(progress >= 0 ? progress : first, 1);
    }
    this.queued.push(report);
    this.draining ??= this.drain().finally(() => {
      this.draining = null;
    });
  }

  /** Resolves once everything queued so far was sent (or the queue was closed). */
  async flushed(): Promise<void> {
    while (this.draining) await this.draining;
  }

  close(): void {
    this.controller.abort();
  }

  private async drain(): Promise<void> {
    const signal = this.controller.signal;
    let delayMs = this.options.retryMs ?? 1000;
    while (this.queued.length > 0 && !signal.aborted) {
      const report = this.queued[0] as DeviceReport;
      try {
        await this.options.send(report, signal);
        this.queued.shift();
        delayMs = this.options.retryMs ?? 1000;
      } catch (error) {
        if (signal.aborted) return;
        if (isFlotillaError(error) && error.code === 'FLT_VALIDATION' && hasRunning(report)) {
          // A server older than the `running` field refuses it: the report still counts without it.
          const { running: _running, ...older } = report;
          this.queued[0] = older;
          continue;
        }
        if (isRefusal(error)) {
          // The server will never take this one (e.g. a stale report): retrying would block the rest.
          this.options.logger.warn({ err: error, report }, 'the server refused an update report; dropped');
          this.queued.shift();
          continue;
        }
        this.options.logger.warn(
          { err: error, retryInMs: delayMs, queued: this.queued.length },
          'could not send an update report; will retry',
        );
        // A rate-limited server says how long to wait (bounded by the longest retry delay).
        const maxRetryMs = this.options.maxRetryMs ?? 60_000;
        await sleep(Math.max(delayMs, Math.min(retryAfterMsOf(error) ?? 0, maxRetryMs)), signal);
        delayMs = Math.min(delayMs * 2, maxRetryMs);
      }
    }
  }
}

function hasRunning(report: DeviceReport): report is UpdateReport & { running: string | null } {
  return !isAppStatusReport(report) && report.running !== undefined;
}

/** A 4xx other than authentication, timeout or rate limiting: sending it again cannot succeed. */
function isRefusal(error: unknown): boolean {
  if (!isFlotillaError(error)) return false;
  const status = error.statusCode;
  return status >= 400 && status < 500 && status !== 401 && status !== 408 && status !== 429;
}
