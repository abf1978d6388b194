/**
 * How long metadata lives and when it is renewed. Online roles are re-signed by the server once less
 * than `refreshRemainingFraction` of their lifetime remains, so a device polling at any normal interval
 * never sees expired online metadata; offline roles are reported to operators `offlineWarnSeconds`
 * before they expire, with the command that renews them.
 */
import { FlotillaError } from '@flotilla/protocol';

export interface TufExpiryPolicy {
  /** Lifetime of timestamp metadata, seconds (default 1 day). */
  timestampSeconds: number;
  /** Lifetime of snapshot metadata, seconds (default 7 days). */
  snapshotSeconds: number;
  /** Lifetime of a device's director targets, seconds (default 7 days). */
  directorTargetsSeconds: number;
  /** Lifetime of the director's root, seconds (default 365 days); renewed by the server (online key). */
  directorRootSeconds: number;
  /** Re-sign an online role when less than this fraction of its lifetime remains (default 0.5). */
  refreshRemainingFraction: number;
  /** Warn about offline roles (root, targets) expiring within this many seconds (default 30 days). */
  offlineWarnSeconds: number;
}

const DAY = 86_400;

export const DEFAULT_EXPIRY_POLICY: Readonly<TufExpiryPolicy> = Object.freeze({
  timestampSeconds: DAY,
  snapshotSeconds: 7 * DAY,
  directorTargetsSeconds: 7 * DAY,
  directorRootSeconds: 365 * DAY,
  refreshRemainingFraction: 0.5,
  offlineWarnSeconds: 30 * DAY,
});

/** The policy with `overrides` applied; FLT_CONFIG_INVALID listing every bad value. */
export function expiryPolicy(overrides: Partial<TufExpiryPolicy> = {}): TufExpiryPolicy {
  const policy = { ...DEFAULT_EXPIRY_POLICY, ...overrides };
  const problems: string[] = [];
  for (const key of [
    'timestampSeconds',
    'snapshotSeconds',
    'directorTargetsSeconds',
    'directorRootSeconds',
    'offlineWarnSeconds',
  ] as const) {
    if (!Number.isSafeInteger(policy[key]) || policy[key] < 60)
      problems.push(`${key} must be an integer of at least 60`);
  }
  if (!(policy.refreshRemainingFraction > 0 && policy.refreshRemainingFraction < 1))
    problems.push('refreshRemainingFraction must be between 0 and 1');
  if (problems.length > 0)
    throw new FlotillaError('FLT_CONFIG_INVALID', `invalid TUF expiry policy: ${problems.join('; ')}`, {
      details: { problems },
    });
  return Object.freeze(policy);
}

export function expiresAfter(now: Date, seconds: number): Date {
  return new Date(now.getTime() + seconds * 1000);
}

/** True when metadata expiring at `expires` has less than the policy's fraction of `lifetimeSeconds` left. */
export function needsRefresh(
  expires: string,
  lifetimeSeconds: number,
  now: Date,
  policy: TufExpiryPolicy,
): boolean {
  const remainingMs = Date.parse(expires) - now.getTime();
  return !(remainingMs >= policy.refreshRemainingFraction * lifetimeSeconds * 1000);
}

/** An offline-signed role that expires soon (or has expired), and how to renew it. */
export interface ExpiryWarning {
  repository: 'image';
  role: 'root' | 'targets';
  version: number;
  expires: string;
  /** Seconds until expiry; negative once expired. */
  remainingSeconds: number;
  expired: boolean;
  /** The CLI command an operator holding the offline key runs to renew it. */
  command: string;
}
