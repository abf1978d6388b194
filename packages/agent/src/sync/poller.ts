/**
 * Polls `GET state` with If-None-Match: an unchanged state costs a 304. Failures back off with
 * full jitter and reset on success; a `state-changed` push from the control channel polls at once.
 */
import type { DeviceState } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { DeviceApi } from '../client/device-api.js';
import type { LocalState } from '../state/local-state.js';
import { WakeableSleep } from '../util/sleep.js';
import { serverBackoff } from './backoff.js';

/** A pending device polls no faster than this: nothing changes until an operator acts. */
export const PENDING_POLL_MIN_MS = 60_000;

export interface PollerOptions {
  api: DeviceApi;
  state: LocalState;
  logger: Logger;
  configuredIntervalMs: number;
  /** A new desired state arrived (status changes are the daemon's business). */
  onState: (state: DeviceState) => void;
  /** Returns false when the error ends polling (device revoked, rejected, unknown). */
  onError: (error: unknown) => boolean;
  isPending: () => boolean;
  random?: () => number;
}

export class StatePoller {
  private readonly wake = new WakeableSleep();
  private serverIntervalMs: number | null = null;

  constructor(private readonly options: PollerOptions) {}

  /** Ends the current wait and polls at once. */
  pollNow(): void {
    this.wake.wake();
  }

  intervalMs(): number {
    const interval = this.serverIntervalMs ?? this.options.configuredIntervalMs;
    return this.options.isPending() ? Math.max(interval, PENDING_POLL_MIN_MS) : interval;
  }

  async run(signal: AbortSignal): Promise<void> {
    const { api, state, logger } = this.options;
    const backoff = serverBackoff(this.options.configuredIntervalMs, this.options.random);
    while (!signal.aborted) {
      let delayMs: number;
      try {
        const result = await api.pollState(state.stateCursor().etag, signal);
        if (backoff.attempts > 0) logger.info({ failures: backoff.attempts }, 'state poll succeeded again');
        backoff.reset();
        if (result.changed) {
          state.saveStateCursor(result.etag, result.state.stateVersion);
          this.serverIntervalMs = result.state.pollIntervalMs;
          logger.debug(
            { stateVersion: result.state.stateVersion, status: result.state.status },
            'desired state received',
          );
          this.options.onState(result.state);
        }
        delayMs = this.intervalMs();
      } catch (e) {
        if (signal.aborted || !this.options.onError(e)) return;
        backoff.capMs = Math.max(this.intervalMs(), backoff.capMs);
        delayMs = backoff.nextAfter(e);
        logger.warn({ err: e, retryInMs: delayMs, failures: backoff.attempts }, 'state poll failed');
      }
      await this.wake.sleep(delayMs, signal);
    }
  }
}
