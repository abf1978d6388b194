/**
 * What makes two releases the same (docs/updates.md "What counts as a change"): a release is its
 * tree and its signed version, runtime and configuration, so any of them changing is an update,
 * while the tree alone decides what is fetched and staged (`releases/<root>` is shared).
 */
import { createHash } from 'node:crypto';
import type { ReleaseSpec } from './release.js';

/** SHA-256 hex of the release's canonical JSON (key order does not matter); pure. */
export function releaseId(release: ReleaseSpec): string {
  const fields = {
    app: release.app,
    version: release.version,
    runtime: release.runtime,
    root: release.root,
    targetPath: release.targetPath,
    config: release.config,
  };
  return createHash('sha256').update(stableJson(fields)).digest('hex');
}

export function sameRelease(a: ReleaseSpec | null, b: ReleaseSpec | null): boolean {
  if (a === null || b === null) return a === b;
  return releaseId(a) === releaseId(b);
}

/** JSON with object keys sorted at every level (the config is parsed JSON: no other values occur). */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
