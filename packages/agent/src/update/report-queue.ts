/**
 * Reports to `POST /api/v1/device/reports`: best effort, in order, queued while offline and
 * retried with backoff. Bounded: when full, progress reports (downloading) are dropped first. An
 * app's process status replaces the one of that app still waiting (only the newest matters).
 *
 * With `sendBatch`, whatever queued up while a request was under way goes in the next one
 * (`POST /api/v1/device/reports/batch`, at most MAX_REPORTS_PER_BATCH): one request and one server
 * transaction instead of one per report. The server records a batch all or none; a batch refused
 * because of one entry (`details.index`) loses only that entry, the rest is sent again. A server
 * without the batch route (FLT_ROUTE_NOT_FOUND) gets one report per request from then on.
 */
import {
  MAX_REPORTS_PER_BATCH,
  isAppStatusReport,
  isFlotillaError,
  retryAfterMsOf,
} from '@flotilla/protocol';
import type { DeviceReport, UpdateReport } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { sleep } from '../util/sleep.js';

export interface ReportQueueOptions {
  send: (report: DeviceReport, signal: AbortSignal) => Promise<void>;
  /** Sends several reports in one request (`POST /api/v1/device/reports/batch`); optional. */
  sendBatch?: (reports: DeviceReport[], signal: AbortSignal) => Promise<void>;
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
  /** How many reports at the head are being sent (never replaced or dropped meanwhile). */
  private inFlight = 0;
  /** False once the server said it has no batch route. */
  private batches: boolean;
  /** The next send is of the head alone (after a batch refused as a whole). */
  private headAlone = false;

  constructor(private readonly options: ReportQueueOptions) {
    this.batches = options.sendBatch !== undefined;
  }

  get size(): number {
    return this.queued.length;
  }

  push(report: DeviceReport): void {
    const max = this.options.maxQueued ?? 1000;
    // The head may be in flight (sent, not yet shifted): never drop it.
    const first = this.inFlight;
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
      const batch =
        this.batches && !this.headAlone && this.queued.length > 1
          ? this.queued.slice(0, MAX_REPORTS_PER_BATCH)
          : this.queued.slice(0, 1);
      const report = batch[0] as DeviceReport;
      this.inFlight = batch.length;
      try {
        if (batch.length > 1) await this.options.sendBatch!(batch, signal);
        else await this.options.send(report, signal);
        this.queued.splice(0, batch.length);
        this.headAlone = false;
        delayMs = this.options.retryMs ?? 1000;
      } catch (error) {
        if (signal.aborted) return;
        if (batch.length > 1 && this.#batchRefused(error, batch)) continue;
        if (
          batch.length === 1 &&
          isFlotillaError(error) &&
          error.code === 'FLT_VALIDATION' &&
          hasRunning(report)
        ) {
          // A server older than the `running` field refuses it: the report still counts without it.
          const { running: _running, ...older } = report;
          this.queued[0] = older;
          continue;
        }
        if (batch.length === 1 && isRefusal(error)) {
          // The server will never take this one (e.g. a stale report): retrying would block the rest.
          this.options.logger.warn({ err: error, report }, 'the server refused an update report; dropped');
          this.queued.shift();
          this.headAlone = false;
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
      } finally {
        this.inFlight = 0;
      }
    }
  }

  /**
   * A batch the server refused (nothing of it was recorded): true when what to send next is
   * settled here, false for a failure to retry (network, 5xx, 401, 408, 429).
   */
  #batchRefused(error: unknown, batch: readonly DeviceReport[]): boolean {
    if (!isFlotillaError(error)) return false;
    if (error.code === 'FLT_ROUTE_NOT_FOUND') {
      // A server older than the batch route: one report per request from now on.
      this.batches = false;
      return true;
    }
    if (!isRefusal(error)) return false;
    const index = (error.details as { index?: unknown } | undefined)?.index;
    if (typeof index === 'number' && Number.isInteger(index) && index >= 0 && index < batch.length) {
      this.options.logger.warn(
        { err: error, report: batch[index] },
        'the server refused an update report; dropped',
      );
      this.queued.splice(index, 1);
      return true;
    }
    // Refused as a whole (e.g. too large): the head alone next, through the single-report route.
    this.headAlone = true;
    return true;
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
