import { parseDurationMs } from '@flotilla/protocol';

/** Default lifetimes of offline-signed metadata; renew with `flotilla keys renew`. */
export const DEFAULT_ROOT_EXPIRES = '365d';
export const DEFAULT_TARGETS_EXPIRES = '90d';

/** `now + duration` (durations as `durationArg` accepts them). */
export function expiresIn(duration: string, now: Date = new Date()): Date {
  return new Date(now.getTime() + parseDurationMs(duration));
}
