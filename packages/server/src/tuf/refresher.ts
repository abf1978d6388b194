/**
 * Re-signs online metadata on a timer, well before it expires (see TufExpiryPolicy). A failed round
 * is logged and retried at the next tick; it never stops the server.
 */
import type { Logger } from 'pino';
import type { DirectorRepository } from './director-repository.js';
import type { ImageRepository } from './image-repository.js';

export interface TufRefresher {
  /** Runs one round now (also what the timer runs). */
  runOnce(): Promise<void>;
  /** Stops the timer and waits for a round in progress. */
  stop(): Promise<void>;
}

/** Starts refreshing every `intervalMs` (default 10 minutes), first round immediately. */
export function startTufRefresher(opts: {
  image: ImageRepository;
  director: DirectorRepository;
  log: Logger;
  intervalMs?: number;
}): TufRefresher {
  const log = opts.log.child({ component: 'tuf-refresher' });
  const intervalMs = opts.intervalMs ?? 10 * 60_000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;

  const round = async (): Promise<void> => {
    try {
      const image = await opts.image.refreshOnline();
      if (image) log.info({ published: image }, 'image repository online metadata re-signed');
      const devices = await opts.director.refreshOnline();
      if (devices > 0) log.info({ repositories: devices }, 'director metadata re-signed');
      for (const warning of await opts.image.expiryWarnings()) {
        log.warn(
          warning,
          `image ${warning.role} metadata expires at ${warning.expires}; renew with: ${warning.command}`,
        );
      }
    } catch (err) {
      log.error({ err }, 'TUF refresh failed; retrying at the next tick');
    }
  };
  const runOnce = (): Promise<void> => (running = running.then(round));
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void runOnce().then(schedule);
    }, intervalMs);
    timer.unref();
  };
  void runOnce().then(schedule);
  return {
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
