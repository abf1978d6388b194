/**
 * The one place where the daemons (`server`, `agent`, `up`) handle SIGTERM and SIGINT: the first
 * signal starts a graceful stop; a second signal, or a stop that outlasts its force timeout, ends
 * the process at once.
 */
import { ExitCode } from '../exit-codes.js';
import type { SignalSource } from '../io.js';

export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
/** How long a graceful stop may take before the process is ended anyway. */
export const DEFAULT_FORCE_AFTER_MS = 15_000;

export interface ShutdownOptions {
  signals: SignalSource;
  /** The graceful stop; called once. */
  stop: () => Promise<void>;
  exit: (code: number) => void;
  log: (message: string) => void;
  forceAfterMs?: number;
}

export interface ShutdownHandle {
  /** Settles when the graceful stop has finished (rejects with the stop's error). */
  readonly stopped: Promise<void>;
  /** Starts the graceful stop without a signal (e.g. the daemon ended on its own). */
  stopNow(reason: string): Promise<void>;
  /** Removes the signal listeners. */
  dispose(): void;
}

export function handleShutdownSignals(options: ShutdownOptions): ShutdownHandle {
  const forceAfterMs = options.forceAfterMs ?? DEFAULT_FORCE_AFTER_MS;
  let stopping: Promise<void> | null = null;
  let resolveStopped!: () => void;
  let rejectStopped!: (error: unknown) => void;
  const stopped = new Promise<void>((resolve, reject) => {
    resolveStopped = resolve;
    rejectStopped = reject;
  });
  // Nobody may be awaiting `stopped` yet when the stop fails; the rejection is still delivered.
  stopped.catch(() => undefined);

  const stopNow = (reason: string): Promise<void> => {
    if (stopping) return stopping;
    options.log(`stopping: ${reason}`);
    const force = setTimeout(() => {
      options.log(`still stopping after ${forceAfterMs / 1000}s: exiting now`);
      options.exit(ExitCode.failure);
    }, forceAfterMs);
    stopping = options.stop().then(
      () => {
        // Stays armed, but no longer keeps the process alive: if a leaked handle prevents a natural
        // exit, the process still ends.
        force.unref();
        resolveStopped();
      },
      (error: unknown) => {
        force.unref();
        rejectStopped(error);
      },
    );
    return stopping;
  };

  const onSignal = (signal: NodeJS.Signals) => () => {
    if (stopping) {
      options.log(`${signal} again: exiting now`);
      options.exit(ExitCode.interrupted);
      return;
    }
    void stopNow(`${signal} (send it again to exit at once)`);
  };
  const listeners = SHUTDOWN_SIGNALS.map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, listener] of listeners) options.signals.on(signal, listener);

  return {
    stopped,
    stopNow,
    dispose: () => {
      for (const [signal, listener] of listeners) options.signals.off(signal, listener);
    },
  };
}
