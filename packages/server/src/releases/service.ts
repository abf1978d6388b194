/**
 * Releases: create (tree walked and referenced objects recorded in one transaction), list, show,
 * delete, and the `signed` flag, which follows the image repository's offline-signed targets.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  FlotillaError,
  checkSecretDeclarations,
  releaseTargetPath,
  runtimeConfigProblems,
} from '@flotilla/protocol';
import { releaseTarget } from '@flotilla/node-kit';
import type { CreateReleaseRequest, Release, ReleaseTargetCustom } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db, ServerContext } from '../context.js';
import { isUniqueViolation } from '../db/errors.js';
import type { ReleasesTable } from '../db/schema.js';
import type { ObjectStore } from '../objects/store.js';
import type { ImageRepository } from '../tuf/index.js';
import { scanTree } from './scan.js';
import type { Trust } from './trust.js';

export interface ReleaseServices {
  ctx: ServerContext;
  store: ObjectStore;
  trust: Trust;
}

export interface Creator {
  userId: string;
  username: string;
  sourceIp: string | null;
}

/** Rows per INSERT of object references (3 parameters each, well below SQLite's limit). */
const REF_BATCH = 1000;

export function toRelease(row: Selectable<ReleasesTable>, storedSecrets: readonly string[] = []): Release {
  const commitments = JSON.parse(row.secrets) as Record<string, string>;
  const names = Object.keys(commitments);
  return {
    ...(names.length > 0 && {
      secrets: names.map((name) => ({
        name,
        commitment: commitments[name]!,
        stored: storedSecrets.includes(name),
      })),
    }),
    app: row.app,
    version: row.version,
    runtime: row.runtime,
    rootObject: row.root_object,
    config: JSON.parse(row.config) as Record<string, unknown>,
    targetPath: row.target_path,
    signed: row.signed === 1,
    files: row.files,
    bytes: Number(row.bytes),
    storedBytes: Number(row.stored_bytes),
    createdAt: row.created_at,
    createdBy: row.created_by,
  };
}

export async function findRelease(db: Db, app: string, version: string): Promise<Release | undefined> {
  const row = await db
    .selectFrom('releases')
    .selectAll()
    .where('app', '=', app)
    .where('version', '=', version)
    .executeTakeFirst();
  return row && toRelease(row, await storedNames(db, app, version));
}

async function storedNames(db: Db, app: string, version: string): Promise<string[]> {
  const rows = await db
    .selectFrom('release_secrets')
    .select('name')
    .where('app', '=', app)
    .where('version', '=', version)
    .execute();
  return rows.map((r) => r.name);
}

export async function getRelease(db: Db, app: string, version: string): Promise<Release> {
  const release = await findRelease(db, app, version);
  if (!release)
    throw new FlotillaError('FLT_NOT_FOUND', `no release ${app}@${version}`, { details: { app, version } });
  return release;
}

export async function listReleases(db: Db, app?: string): Promise<Release[]> {
  let query = db.selectFrom('releases').selectAll();
  if (app !== undefined) query = query.where('app', '=', app);
  const rows = await query.orderBy('app').orderBy('created_at', 'desc').orderBy('version').execute();
  const stored = await db.selectFrom('release_secrets').select(['app', 'version', 'name']).execute();
  return rows.map((row) =>
    toRelease(
      row,
      stored.filter((s) => s.app === row.app && s.version === row.version).map((s) => s.name),
    ),
  );
}

/** The custom fields of the release's TUF target. */
export function targetCustom(
  release: Pick<Release, 'app' | 'version' | 'runtime' | 'rootObject' | 'config'> & {
    commitments?: Record<string, string> | undefined;
  },
) {
  const custom: ReleaseTargetCustom = {
    app: release.app,
    version: release.version,
    runtime: release.runtime,
    rootObject: release.rootObject,
  };
  if (Object.keys(release.config).length > 0) custom.config = release.config;
  if (release.commitments && Object.keys(release.commitments).length > 0)
    custom.secrets = release.commitments;
  return custom;
}

function commitmentsOf(release: Release): Record<string, string> {
  return Object.fromEntries((release.secrets ?? []).map((s) => [s.name, s.commitment]));
}

/**
 * Creates a release once every object of its tree is stored. Returns `created: false` with the
 * existing release when an identical one exists; FLT_CONFLICT when app@version names another.
 */
export async function createRelease(
  svc: ReleaseServices,
  input: CreateReleaseRequest,
  creator: Creator,
): Promise<{ release: Release; created: boolean }> {
  const { ctx } = svc;
  const config = input.config ?? {};
  // Checked before anything is looked up or written: a release no agent would install is refused.
  const problems = runtimeConfigProblems(input.runtime, config);
  if (problems.length > 0)
    throw new FlotillaError(
      'FLT_VALIDATION',
      `invalid ${input.runtime} runtime configuration for ${input.app}@${input.version}`,
      { details: { problems } },
    );
  const commitments = input.secrets ?? {};
  // Every `{ "$secret": NAME }` in the config has a commitment, and every commitment is used.
  checkSecretDeclarations(config, commitments);
  const targetPath = releaseTargetPath(input.app, input.version, input.rootObject);
  const existing = await findRelease(ctx.db, input.app, input.version);
  if (existing)
    return { release: await sameOrConflict(svc, existing, input, config, creator), created: false };

  const scan = await scanTree(svc.store, input.rootObject);
  // Validates the custom fields (config size, names) before anything is written.
  const target = releaseTarget(targetCustom({ ...input, config, commitments }), scan.rootLength);
  const now = ctx.clock.now().toISOString();
  try {
    await ctx.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('releases')
        .values({
          app: input.app,
          version: input.version,
          runtime: input.runtime,
          root_object: input.rootObject,
          root_length: scan.rootLength,
          config: JSON.stringify(config),
          secrets: JSON.stringify(commitments),
          target_path: targetPath,
          files: scan.files,
          bytes: scan.bytes,
          stored_bytes: scan.storedBytes,
          signed: 0,
          created_at: now,
          created_by: creator.username,
        })
        .execute();
      const ids = [...scan.ids];
      for (let i = 0; i < ids.length; i += REF_BATCH) {
        await trx
          .insertInto('object_refs')
          .values(
            ids
              .slice(i, i + REF_BATCH)
              .map((id) => ({ app: input.app, version: input.version, object_id: id })),
          )
          .execute();
      }
      await ctx.audit.record(
        {
          actorType: 'user',
          actorId: creator.userId,
          action: 'release.create',
          subjectType: 'release',
          subjectId: `${input.app}@${input.version}`,
          sourceIp: creator.sourceIp,
          details: {
            targetPath,
            files: scan.files,
            bytes: scan.bytes,
            objects: ids.length,
            ...(Object.keys(commitments).length > 0 && { secrets: Object.keys(commitments) }),
          },
        },
        trx,
      );
    });
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    const raced = await getRelease(ctx.db, input.app, input.version);
    return { release: await sameOrConflict(svc, raced, input, config, creator), created: false };
  }
  if (svc.trust.signLocally) await svc.trust.signLocally(target);
  await refreshSigned(ctx, svc.trust.image);
  return { release: await getRelease(ctx.db, input.app, input.version), created: true };
}

/**
 * An identical request returns the existing release. Secrets are committed with fresh random
 * nonces at every push, so a push repeated after a failure differs only in its commitments: while
 * the release is not signed yet (no device can have it), the new commitments replace the old ones
 * and the stored values (which no longer match) are dropped; the push then uploads them again.
 */
async function sameOrConflict(
  svc: ReleaseServices,
  existing: Release,
  input: CreateReleaseRequest,
  config: Record<string, unknown>,
  creator: Creator,
): Promise<Release> {
  const same =
    existing.runtime === input.runtime &&
    existing.rootObject === input.rootObject &&
    isDeepStrictEqual(existing.config, config);
  const commitments = input.secrets ?? {};
  if (same && isDeepStrictEqual(commitmentsOf(existing), commitments)) return existing;
  const sameNames = isDeepStrictEqual(
    Object.keys(commitmentsOf(existing)).sort(),
    Object.keys(commitments).sort(),
  );
  if (same && sameNames && !existing.signed) {
    const { ctx } = svc;
    await ctx.db.transaction().execute(async (trx) => {
      await trx
        .deleteFrom('release_secrets')
        .where('app', '=', existing.app)
        .where('version', '=', existing.version)
        .execute();
      await trx
        .updateTable('releases')
        .set({ secrets: JSON.stringify(commitments) })
        .where('app', '=', existing.app)
        .where('version', '=', existing.version)
        .execute();
      await ctx.audit.record(
        {
          actorType: 'user',
          actorId: creator.userId,
          action: 'release.secrets.recommit',
          subjectType: 'release',
          subjectId: `${existing.app}@${existing.version}`,
          sourceIp: creator.sourceIp,
          details: { secrets: Object.keys(commitments) },
        },
        trx,
      );
    });
    return getRelease(ctx.db, existing.app, existing.version);
  }
  throw new FlotillaError('FLT_CONFLICT', `release ${input.app}@${input.version} exists with other content`, {
    details: { app: input.app, version: input.version, rootObject: existing.rootObject },
  });
}

/**
 * Sets each release's `signed` flag: true when the image repository's latest targets (or its
 * delegated gateway role, within its delegation) name its target path with the root object's
 * length and SHA-256. Returns how many flags changed.
 */
export async function refreshSigned(ctx: ServerContext, image: ImageRepository): Promise<number> {
  const targets = await image.allTargets();
  const rows = await ctx.db
    .selectFrom('releases')
    .select(['app', 'version', 'target_path', 'root_object', 'root_length', 'signed'])
    .execute();
  let changed = 0;
  for (const row of rows) {
    const target = Object.prototype.hasOwnProperty.call(targets, row.target_path)
      ? targets[row.target_path]
      : undefined;
    const signed =
      target !== undefined && target.length === row.root_length && target.hashes.sha256 === row.root_object
        ? 1
        : 0;
    if (signed === row.signed) continue;
    await ctx.db
      .updateTable('releases')
      .set({ signed })
      .where('app', '=', row.app)
      .where('version', '=', row.version)
      .execute();
    changed += 1;
  }
  return changed;
}

/** Deletes a release and its object references (admin); refused while a device is assigned it. */
export async function deleteRelease(
  ctx: ServerContext,
  app: string,
  version: string,
  actor: Creator,
): Promise<void> {
  await ctx.db.transaction().execute(async (trx) => {
    const release = await getRelease(trx, app, version);
    const users = await trx
      .selectFrom('device_apps')
      .select('device_id')
      .where((eb) => eb.or([eb('desired', '=', release.targetPath), eb('current', '=', release.targetPath)]))
      .limit(20)
      .execute();
    if (users.length > 0)
      throw new FlotillaError(
        'FLT_RELEASE_IN_USE',
        `${app}@${version} is assigned to or running on devices`,
        {
          details: { devices: users.map((u) => u.device_id) },
        },
      );
    await trx.deleteFrom('object_refs').where('app', '=', app).where('version', '=', version).execute();
    await trx.deleteFrom('release_secrets').where('app', '=', app).where('version', '=', version).execute();
    await trx.deleteFrom('releases').where('app', '=', app).where('version', '=', version).execute();
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: actor.userId,
        action: 'release.delete',
        subjectType: 'release',
        subjectId: `${app}@${version}`,
        sourceIp: actor.sourceIp,
        details: { targetPath: release.targetPath },
      },
      trx,
    );
  });
}
