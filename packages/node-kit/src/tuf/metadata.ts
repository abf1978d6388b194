/**
 * Builders for the four top-level TUF roles, signing with `Signer`s, and (de)serialisation with
 * stable error codes. Built on `@tufjs/models`, the models tuf-js verifies with, so what the server
 * and the CLI produce is exactly what the agent checks.
 */
import { createHash } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import {
  Metadata,
  MetadataKind,
  MetaFile,
  Root,
  Signature,
  Snapshot,
  Targets,
  Timestamp,
} from '@tufjs/models';
import type { Key, TargetFile } from '@tufjs/models';
import { FlotillaError } from '@flotilla/protocol';
import type { Signer } from './keys.js';

export const TUF_SPEC_VERSION = '1.0.31';
export const TOP_LEVEL_ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type TopLevelRole = (typeof TOP_LEVEL_ROLES)[number];
export type AnyMetadata = Metadata<Root> | Metadata<Targets> | Metadata<Snapshot> | Metadata<Timestamp>;

/** The keys allowed to sign one role and how many of them must sign. */
export interface RoleKeys {
  keys: Key[];
  threshold: number;
}

/** TUF's `expires` format: ISO 8601 in UTC without fractional seconds. */
export function tufExpires(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function checkVersion(version: number): void {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new FlotillaError('FLT_VALIDATION', `metadata version must be a positive integer, got ${version}`);
  }
}

/** Root metadata (unsigned) naming the keys and threshold of every top-level role. */
export function newRoot(opts: {
  version: number;
  expires: Date;
  roles: Record<TopLevelRole, RoleKeys>;
  consistentSnapshot?: boolean;
}): Metadata<Root> {
  checkVersion(opts.version);
  const keys: Record<string, unknown> = {};
  const roles: Record<string, unknown> = {};
  for (const role of TOP_LEVEL_ROLES) {
    const { keys: roleKeys, threshold } = opts.roles[role];
    const keyIds = [...new Set(roleKeys.map((k) => k.keyID))];
    if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > keyIds.length) {
      throw new FlotillaError(
        'FLT_VALIDATION',
        `role ${role}: threshold ${threshold} needs 1..${keyIds.length} distinct keys`,
      );
    }
    for (const key of roleKeys) keys[key.keyID] = key.toJSON();
    roles[role] = { keyids: keyIds, threshold };
  }
  const signed = Root.fromJSON({
    _type: 'root',
    spec_version: TUF_SPEC_VERSION,
    version: opts.version,
    expires: tufExpires(opts.expires),
    consistent_snapshot: opts.consistentSnapshot ?? true,
    keys: keys as Record<string, never>,
    roles: roles as Record<string, never>,
  });
  return new Metadata(signed);
}

/** Targets metadata (unsigned) listing `targets`. */
export function newTargets(opts: {
  version: number;
  expires: Date;
  targets?: TargetFile[];
  delegations?: Targets['delegations'];
}): Metadata<Targets> {
  checkVersion(opts.version);
  const signed = new Targets({
    version: opts.version,
    specVersion: TUF_SPEC_VERSION,
    expires: tufExpires(opts.expires),
    ...(opts.delegations && { delegations: opts.delegations }),
  });
  for (const target of opts.targets ?? []) signed.addTarget(target);
  return new Metadata(signed);
}

/** Snapshot metadata (unsigned) naming the version (and length, hashes) of `targets.json`. */
export function newSnapshot(opts: {
  version: number;
  expires: Date;
  targetsMeta: MetaFile;
  /** Delegated targets roles' files, by role name (e.g. `gateway` for `gateway.json`). */
  delegatedMeta?: Record<string, MetaFile>;
}): Metadata<Snapshot> {
  checkVersion(opts.version);
  const meta: Record<string, MetaFile> = { 'targets.json': opts.targetsMeta };
  for (const [role, file] of Object.entries(opts.delegatedMeta ?? {})) meta[`${role}.json`] = file;
  const signed = new Snapshot({
    version: opts.version,
    specVersion: TUF_SPEC_VERSION,
    expires: tufExpires(opts.expires),
    meta,
  });
  return new Metadata(signed);
}

/** Timestamp metadata (unsigned) naming the version (and length, hashes) of the snapshot. */
export function newTimestamp(opts: {
  version: number;
  expires: Date;
  snapshotMeta: MetaFile;
}): Metadata<Timestamp> {
  checkVersion(opts.version);
  const signed = new Timestamp({
    version: opts.version,
    specVersion: TUF_SPEC_VERSION,
    expires: tufExpires(opts.expires),
    snapshotMeta: opts.snapshotMeta,
  });
  return new Metadata(signed);
}

/** The entry a parent role records for a metadata file: version, length and SHA-256 of its bytes. */
export function metaFileFor(bytes: Uint8Array, version: number): MetaFile {
  return new MetaFile({
    version,
    length: bytes.length,
    hashes: { sha256: createHash('sha256').update(bytes).digest('hex') },
  });
}

/** The canonical bytes signatures cover (the `signed` object in canonical JSON). */
export function signedBytes(md: AnyMetadata): Buffer {
  return Buffer.from(canonicalize(md.signed.toJSON()));
}

/** Adds one signature per signer (replacing an older signature by the same key). */
export async function signMetadata(md: AnyMetadata, signers: readonly Signer[]): Promise<void> {
  const bytes = signedBytes(md);
  for (const signer of signers) {
    const sig = await signer.sign(bytes);
    if (sig.length !== 64)
      throw new FlotillaError('FLT_SIGNATURE_INVALID', 'signer returned a signature that is not 64 bytes');
    md.signatures[signer.key.keyID] = new Signature({
      keyID: signer.key.keyID,
      sig: Buffer.from(sig).toString('hex'),
    });
  }
}

/** The bytes a metadata file is stored and served as. */
export function serializeMetadata(md: AnyMetadata): Buffer {
  return Buffer.from(JSON.stringify(md.toJSON()));
}

export function parseMetadata(kind: 'root', bytes: Uint8Array): Metadata<Root>;
export function parseMetadata(kind: 'targets', bytes: Uint8Array): Metadata<Targets>;
export function parseMetadata(kind: 'snapshot', bytes: Uint8Array): Metadata<Snapshot>;
export function parseMetadata(kind: 'timestamp', bytes: Uint8Array): Metadata<Timestamp>;
/** Parses metadata of the given role; anything malformed is FLT_TUF_METADATA_INVALID. */
export function parseMetadata(kind: TopLevelRole, bytes: Uint8Array): AnyMetadata {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new FlotillaError('FLT_TUF_METADATA_INVALID', `${kind} metadata is not JSON`, { cause });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new FlotillaError('FLT_TUF_METADATA_INVALID', `${kind} metadata is not a JSON object`);
  }
  const signed = (json as { signed?: unknown }).signed;
  if (typeof signed !== 'object' || signed === null || (signed as { _type?: unknown })._type !== kind) {
    throw new FlotillaError('FLT_TUF_METADATA_INVALID', `metadata is not of type ${kind}`);
  }
  try {
    switch (kind) {
      case 'root':
        return Metadata.fromJSON(MetadataKind.Root, json as Record<string, never>);
      case 'targets':
        return Metadata.fromJSON(MetadataKind.Targets, json as Record<string, never>);
      case 'snapshot':
        return Metadata.fromJSON(MetadataKind.Snapshot, json as Record<string, never>);
      case 'timestamp':
        return Metadata.fromJSON(MetadataKind.Timestamp, json as Record<string, never>);
    }
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new FlotillaError('FLT_TUF_METADATA_INVALID', `${kind} metadata is malformed: ${reason}`, {
      cause,
    });
  }
}
