/**
 * Records why tuf-js refused metadata before its Updater wraps the error (see failure-log.ts). The
 * hooks wrap the four update methods of one Updater's trusted set, call through unchanged and only
 * observe the error; verification stays entirely tuf-js's.
 */
import type { Updater } from 'tuf-js';
import { BadVersionError } from 'tuf-js/dist/error.js';
import type { FailureLog, TufStep } from './failure-log.js';

type UpdateMethod = (...args: unknown[]) => unknown;

interface TrustedSetShape {
  timestamp?: { signed?: { snapshotMeta?: { version?: unknown } } };
  [method: string]: unknown;
}

const METHODS: Record<string, TufStep> = {
  updateRoot: 'root',
  updateTimestamp: 'timestamp',
  updateSnapshot: 'snapshot',
  updateDelegatedTargets: 'targets',
};

/** Installs the hooks; returns false (and changes nothing) if this tuf-js has another internal shape. */
export function hookTrustedSet(updater: Updater, failures: FailureLog): boolean {
  const set = (updater as unknown as { trustedSet?: TrustedSetShape }).trustedSet;
  if (!set || Object.keys(METHODS).some((name) => typeof set[name] !== 'function')) return false;
  for (const [name, step] of Object.entries(METHODS)) {
    const original = (set[name] as UpdateMethod).bind(set);
    set[name] = (...args: unknown[]) => {
      try {
        return original(...args);
      } catch (error) {
        const versionDiffersFromParent =
          step === 'snapshot' && error instanceof BadVersionError
            ? snapshotVersionDiffers(set, args[0])
            : undefined;
        failures.record({
          step,
          source: 'verify',
          error,
          ...(versionDiffersFromParent !== undefined && { versionDiffersFromParent }),
        });
        throw error;
      }
    };
  }
  return true;
}

// Spec 5.5.4 (snapshot version must equal the timestamp's) versus 5.5.5 (no role may roll back).
function snapshotVersionDiffers(set: TrustedSetShape, bytes: unknown): boolean | undefined {
  try {
    const expected = set.timestamp?.signed?.snapshotMeta?.version;
    const parsed = JSON.parse(Buffer.from(bytes as Uint8Array).toString('utf8')) as {
      signed?: { version?: unknown };
    };
    return typeof expected === 'number' ? parsed.signed?.version !== expected : undefined;
  } catch {
    return undefined;
  }
}
