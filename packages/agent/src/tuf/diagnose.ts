/**
 * Why tuf-js refused the metadata a refresh downloaded, as a Flotilla code. tuf-js 5 exports no
 * error classes and wraps snapshot and targets failures in a message-only error (updater.js
 * loadSnapshot/loadTargets), so the refusal itself says little. tuf-js decides; this only explains:
 * it runs the checks of the refused step (TrustedMetadataStore's, in the same order, each citing
 * the spec) with @tufjs/models' public API over the downloaded bytes and the metadata tuf-js
 * trusted on disk, and names the first that fails. It never accepts or persists anything.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ErrorCode } from '@flotilla/protocol';
import type { TufStep } from './failure-log.js';
import { GATEWAY_ROLE, parseMetadata } from '@flotilla/node-kit';
import { readTrusted } from './memory-metadata.js';
import type { MetadataLocation } from './memory-metadata.js';

/** The first check `bytes` (downloaded for `step`) fails against the metadata trusted in `dir`. */
export function diagnoseRefusal(
  step: TufStep,
  bytes: Uint8Array,
  dir: MetadataLocation,
  now = new Date(),
): ErrorCode {
  try {
    switch (step) {
      case 'root':
        return root(bytes, dir);
      case 'timestamp':
        return timestamp(bytes, dir, now);
      case 'snapshot':
        return snapshot(bytes, dir, now);
      case 'targets':
        return targets(bytes, dir, now);
      case 'gateway':
        return delegated(GATEWAY_ROLE, bytes, dir, now);
    }
  } catch {
    // Malformed (not JSON, wrong type, fields of the wrong type) or a trusted file unreadable.
  }
  return 'FLT_TUF_METADATA_INVALID';
}

const read = (dir: MetadataLocation, kind: string) =>
  typeof dir === 'string' ? readFileSync(join(dir, `${kind}.json`)) : readTrusted(dir, kind);
const trustedRoot = (dir: MetadataLocation) => parseMetadata('root', read(dir, 'root'));
const trustedTimestamp = (dir: MetadataLocation) => parseMetadata('timestamp', read(dir, 'timestamp'));
const trustedSnapshot = (dir: MetadataLocation) => parseMetadata('snapshot', read(dir, 'snapshot'));

function fails(check: () => void): boolean {
  try {
    check();
    return false;
  } catch {
    return true;
  }
}

/** Spec 5.3.4–5.3.5: signed by the trusted root and by itself, version exactly one more. */
function root(bytes: Uint8Array, dir: MetadataLocation): ErrorCode {
  const current = trustedRoot(dir);
  const next = parseMetadata('root', bytes);
  if (fails(() => current.verifyDelegate('root', next))) return 'FLT_TUF_SIGNATURE';
  if (next.signed.version !== current.signed.version + 1) return 'FLT_TUF_ROLLBACK';
  if (fails(() => next.verifyDelegate('root', next))) return 'FLT_TUF_SIGNATURE';
  return 'FLT_TUF_METADATA_INVALID';
}

/** Spec 5.3.10 (final root expired), 5.4.2 signature, 5.4.3 rollback of it or its snapshot, 5.4.4 expiry. */
function timestamp(bytes: Uint8Array, dir: MetadataLocation, now: Date): ErrorCode {
  const rootMd = trustedRoot(dir);
  if (rootMd.signed.isExpired(now)) return 'FLT_TUF_FREEZE';
  const next = parseMetadata('timestamp', bytes);
  if (fails(() => rootMd.verifyDelegate('timestamp', next))) return 'FLT_TUF_SIGNATURE';
  const current = optional(() => trustedTimestamp(dir));
  if (current !== null) {
    if (next.signed.version < current.signed.version) return 'FLT_TUF_ROLLBACK';
    if (next.signed.snapshotMeta.version < current.signed.snapshotMeta.version) return 'FLT_TUF_ROLLBACK';
  }
  if (next.signed.isExpired(now)) return 'FLT_TUF_FREEZE';
  return 'FLT_TUF_METADATA_INVALID';
}

/**
 * Spec 5.5.1 (final timestamp expired), 5.5.2 hashes and length, 5.5.3 signature, 5.5.5 no role
 * version goes back (against the snapshot trusted before), 5.5.6 expiry, 5.5.4 version equals the
 * one the timestamp names.
 */
function snapshot(bytes: Uint8Array, dir: MetadataLocation, now: Date): ErrorCode {
  const rootMd = trustedRoot(dir);
  const ts = trustedTimestamp(dir);
  if (ts.signed.isExpired(now)) return 'FLT_TUF_FREEZE';
  if (fails(() => ts.signed.snapshotMeta.verify(Buffer.from(bytes)))) return 'FLT_TUF_HASH';
  const next = parseMetadata('snapshot', bytes);
  if (fails(() => rootMd.verifyDelegate('snapshot', next))) return 'FLT_TUF_SIGNATURE';
  const before = optional(() => trustedSnapshot(dir));
  // tuf-js holds the snapshot on disk as trusted only if its signature still verifies.
  if (before !== null && !fails(() => rootMd.verifyDelegate('snapshot', before))) {
    for (const [name, meta] of Object.entries(before.signed.meta)) {
      const named = next.signed.meta[name];
      if (named === undefined) return 'FLT_TUF_METADATA_INVALID';
      if (named.version < meta.version) return 'FLT_TUF_ROLLBACK';
    }
  }
  if (next.signed.isExpired(now)) return 'FLT_TUF_FREEZE';
  if (next.signed.version !== ts.signed.snapshotMeta.version) return 'FLT_TUF_MIX_AND_MATCH';
  return 'FLT_TUF_METADATA_INVALID';
}

/**
 * Spec 5.6.1 (the trusted snapshot expired or not the one the timestamp names), 5.6.2 hashes and
 * length, 5.6.3 signature, 5.6.4 version equals the one the snapshot names, 5.6.5 expiry.
 */
function targets(bytes: Uint8Array, dir: MetadataLocation, now: Date): ErrorCode {
  const rootMd = trustedRoot(dir);
  const ts = trustedTimestamp(dir);
  const snap = trustedSnapshot(dir);
  if (snap.signed.isExpired(now)) return 'FLT_TUF_FREEZE';
  if (snap.signed.version !== ts.signed.snapshotMeta.version) return 'FLT_TUF_MIX_AND_MATCH';
  const meta = snap.signed.meta['targets.json'];
  if (meta === undefined) return 'FLT_TUF_METADATA_INVALID';
  if (fails(() => meta.verify(Buffer.from(bytes)))) return 'FLT_TUF_HASH';
  const next = parseMetadata('targets', bytes);
  if (fails(() => rootMd.verifyDelegate('targets', next))) return 'FLT_TUF_SIGNATURE';
  if (next.signed.version !== meta.version) return 'FLT_TUF_MIX_AND_MATCH';
  if (next.signed.isExpired(now)) return 'FLT_TUF_FREEZE';
  return 'FLT_TUF_METADATA_INVALID';
}

/**
 * Spec 5.6.7.2 (delegated targets): hashes and length the trusted snapshot names, a threshold of
 * the keys the trusted top-level targets delegate `role` to, the version the snapshot names, expiry.
 */
function delegated(role: string, bytes: Uint8Array, dir: MetadataLocation, now: Date): ErrorCode {
  const snap = trustedSnapshot(dir);
  const meta = snap.signed.meta[`${role}.json`];
  if (meta === undefined) return 'FLT_TUF_METADATA_INVALID';
  if (fails(() => meta.verify(Buffer.from(bytes)))) return 'FLT_TUF_HASH';
  const next = parseMetadata('targets', bytes);
  const parent = parseMetadata('targets', read(dir, 'targets'));
  if (fails(() => parent.verifyDelegate(role, next))) return 'FLT_TUF_SIGNATURE';
  if (next.signed.version !== meta.version) return 'FLT_TUF_MIX_AND_MATCH';
  if (next.signed.isExpired(now)) return 'FLT_TUF_FREEZE';
  return 'FLT_TUF_METADATA_INVALID';
}

function optional<T>(read: () => T): T | null {
  try {
    return read();
  } catch {
    return null;
  }
}
