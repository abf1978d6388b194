/**
 * The update engine's part in a connected session: the HTTP fetcher and report queue bound to the
 * device token, the TUF assignment, a loop that converges at start, on `state-changed` and after a
 * failure (with backoff), and the operator's `rollback` / `restart` actions.
 */
import {
  DEVICE_REPORTS_ROUTE,
  DEVICE_REPORT_BATCH_ROUTE,
  isFlotillaError,
  parseReleaseTargetPath,
} from '@flotilla/protocol';
import type { AppLogs, DeviceAppAction, LogsRequestData, UpdateReport } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.js';
import { reactionTo } from '../client/classify.js';
import type { JsonHttpClient } from '@flotilla/node-kit';
import type { TokenManager } from '../client/tokens.js';
import { serverBackoff } from '../sync/backoff.js';
import { tufFailureReport } from '../tuf/failure-report.js';
import { WakeableSleep } from '../util/sleep.js';
import type { UpdateEngine } from './engine.js';
import type { AssignmentAhead, ReleaseSpec } from '../model/release.js';
import { ReportQueue } from './report-queue.js';
import { serverUpdateSource } from './source.js';

/** Converge again this often even without a push (a missed `state-changed`, an expired hold). */
const IDLE_RECHECK_MS = 60 * 60 * 1000;

export interface SessionUpdatesOptions {
  engine: UpdateEngine;
  config: AgentConfig;
  http: JsonHttpClient;
  tokens: TokenManager;
  deviceId: string;
  /** The newest state version the server told (sent with TUF reads: STATE_VERSION_HEADER). */
  stateVersion?: () => number | null;
  logger: Logger;
  random?: () => number;
  /** Replaces the TUF-verified assignment (tests of the session's wiring); each call is one converge pass. */
  assignment?: (signal: AbortSignal, ahead?: AssignmentAhead) => Promise<ReleaseSpec[]>;
}

/** How long a `--once` pass waits for its reports to reach the server. */
const REPORT_FLUSH_MS = 30_000;

export class SessionUpdates {
  private readonly wake = new WakeableSleep();
  private readonly reports: ReportQueue;

  constructor(private readonly options: SessionUpdatesOptions) {
    const { config, http, tokens, logger } = options;
    const post = async (path: string, body: unknown, signal: AbortSignal) => {
      try {
        await http.request({
          method: 'POST',
          path,
          schema: null,
          token: await tokens.get(signal),
          body,
          signal,
        });
      } catch (error) {
        if (reactionTo(error) === 'refresh-token') tokens.invalidate();
        throw error;
      }
    };
    this.reports = new ReportQueue({
      logger,
      send: (report, signal) => post(DEVICE_REPORTS_ROUTE, report, signal),
      sendBatch: (reports, signal) => post(DEVICE_REPORT_BATCH_ROUTE, { reports }, signal),
    });
    const { fetcher, assignment } = serverUpdateSource({
      serverUrl: http.baseUrl,
      deviceId: options.deviceId,
      ...(options.stateVersion && { stateVersion: options.stateVersion }),
      dataDir: config.dataDir,
      trustedRootFile: config.trustedRootFile,
      tokens,
      cache: options.engine.cache,
      partialDir: options.engine.layout.partialDir,
      logger,
      timeoutMs: config.requestTimeoutMs,
      concurrency: config.fetchConcurrency,
      bytesPerSecond: config.fetchBytesPerSecond,
    });
    options.engine.attach({
      fetcher,
      report: (r) => this.reports.push(r),
      assignment: async (signal, ahead) => {
        try {
          return await (options.assignment ?? assignment)(signal, ahead);
        } catch (error) {
          this.reportRefusal(error);
          throw error;
        }
      },
    });
  }

  /**
   * One converge pass (`--update-on-start`, `--once`), resolved once its reports have been sent
   * (or REPORT_FLUSH_MS passed). True: no update of the pass failed or was rolled back.
   */
  async pass(signal: AbortSignal): Promise<boolean> {
    const ok = (await this.options.engine.converge(signal)) && this.options.engine.lastPassClean;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.reports.flushed(),
      new Promise((resolve) => (timer = setTimeout(resolve, REPORT_FLUSH_MS))),
    ]);
    clearTimeout(timer);
    return ok;
  }

  /** Ends the session's part in updates without `run` (after a `--once` pass). */
  close(): void {
    this.options.engine.attach(null);
    this.reports.close();
  }

  /** Converges now (a `state-changed` push or a changed state poll). */
  trigger(): void {
    this.wake.wake();
  }

  async run(signal: AbortSignal): Promise<void> {
    const backoff = serverBackoff(this.options.config.pollIntervalMs, this.options.random);
    try {
      while (!signal.aborted) {
        const ok = await this.options.engine.converge(signal);
        if (signal.aborted) break;
        await this.wake.sleep(ok ? IDLE_RECHECK_MS : backoff.next(), signal);
        if (ok) backoff.reset();
      }
    } finally {
      this.options.engine.attach(null);
      this.reports.close();
    }
  }

  /** The operator's action from the control channel; a refusal is sent back in the ack. */
  async act(action: DeviceAppAction, app: string, signal: AbortSignal): Promise<void> {
    if (action === 'restart') return this.options.engine.restart(app, signal);
    await this.options.engine.rollback(app, signal);
  }

  /** The tail of an app's captured output (the control channel's `logs`). */
  logs(request: LogsRequestData): AppLogs {
    return this.options.engine.appLogs(request.app, request.stream ?? 'both', request.maxBytes);
  }

  private reportRefusal(error: unknown): void {
    const failure = tufFailureReport(error);
    let app: string | null = null;
    if (failure.path !== undefined) {
      try {
        app = parseReleaseTargetPath(failure.path).app;
      } catch {
        app = null;
      }
    }
    const apps = app !== null ? [app] : this.options.engine.records.apps();
    for (const a of apps) {
      const report: UpdateReport = {
        app: a,
        targetPath: failure.path ?? '',
        phase: 'failed',
        error: { code: failure.code, message: failure.message, details: failure },
        at: new Date().toISOString(),
      };
      this.reports.push(report);
    }
    if (!isFlotillaError(error))
      this.options.logger.error({ err: error }, 'unexpected error verifying the assignment');
  }
}
