/**
 * Release secrets on the server (docs/security.md "Secrets in runtime config"): values the CLI
 * uploads are checked against the release's offline-signed commitments and stored encrypted
 * (`SecretVault`); each assigned device gets them sealed to its own key inside its director
 * target; an admin may reveal one (audited). No other path returns a value.
 */
import { FlotillaError } from '@flotilla/protocol';
import { checkSecretOpening, sealSecret } from '@flotilla/node-kit';
import type { PutSecretsResponse, SealedSecrets, SecretOpening } from '@flotilla/protocol';
import type { Db, ServerContext } from '../context.js';
import type { SecretVault } from './vault.js';

export interface SecretActor {
  userId: string;
  sourceIp: string | null;
  username: string;
}

export interface ReleaseSecretsRow {
  app: string;
  version: string;
  target_path: string;
  secrets: string;
}

function commitmentsOf(row: Pick<ReleaseSecretsRow, 'secrets'>): Record<string, string> {
  return JSON.parse(row.secrets) as Record<string, string>;
}

async function releaseRow(db: Db, app: string, version: string): Promise<ReleaseSecretsRow> {
  const row = await db
    .selectFrom('releases')
    .select(['app', 'version', 'target_path', 'secrets'])
    .where('app', '=', app)
    .where('version', '=', version)
    .executeTakeFirst();
  if (!row)
    throw new FlotillaError('FLT_NOT_FOUND', `no release ${app}@${version}`, { details: { app, version } });
  return row;
}

/** Names of the release's secrets whose values the server holds. */
export async function storedSecretNames(db: Db, app: string, version: string): Promise<string[]> {
  const rows = await db
    .selectFrom('release_secrets')
    .select('name')
    .where('app', '=', app)
    .where('version', '=', version)
    .orderBy('name')
    .execute();
  return rows.map((r) => r.name);
}

/** Committed names of a release whose value is not stored yet. */
export async function missingSecrets(db: Db, app: string, version: string): Promise<string[]> {
  const row = await releaseRow(db, app, version);
  const stored = new Set(await storedSecretNames(db, app, version));
  return Object.keys(commitmentsOf(row)).filter((n) => !stored.has(n));
}

/**
 * Stores secret values for a release (deployer). Every name must be committed in the release and
 * every value must open its commitment (FLT_SECRET_MISMATCH); nothing is stored otherwise.
 */
export async function putSecrets(
  ctx: ServerContext,
  vault: SecretVault,
  app: string,
  version: string,
  openings: Readonly<Record<string, SecretOpening>>,
  actor: SecretActor,
): Promise<PutSecretsResponse> {
  const row = await releaseRow(ctx.db, app, version);
  const commitments = commitmentsOf(row);
  const names = Object.keys(openings);
  const unknown = names.filter((n) => !Object.prototype.hasOwnProperty.call(commitments, n));
  if (unknown.length > 0)
    throw new FlotillaError(
      'FLT_VALIDATION',
      `${app}@${version} commits to no secret named ${unknown.join(', ')}`,
      { details: { unknown } },
    );
  for (const name of names)
    checkSecretOpening(name, commitments[name]!, openings[name]!, `${app}@${version}`);
  const now = ctx.clock.now().toISOString();
  await ctx.db.transaction().execute(async (trx) => {
    for (const name of names) {
      const ciphertext = vault.encrypt({ app, version, name }, openings[name]!);
      await trx
        .insertInto('release_secrets')
        .values({ app, version, name, ciphertext, created_at: now, created_by: actor.username })
        .onConflict((oc) =>
          oc
            .columns(['app', 'version', 'name'])
            .doUpdateSet({ ciphertext, created_at: now, created_by: actor.username }),
        )
        .execute();
    }
    await ctx.audit.record(
      {
        actorType: 'user',
        actorId: actor.userId,
        action: 'release.secrets.put',
        subjectType: 'release',
        subjectId: `${app}@${version}`,
        sourceIp: actor.sourceIp,
        details: { names },
      },
      trx,
    );
  });
  const stored = await storedSecretNames(ctx.db, app, version);
  return { stored, missing: Object.keys(commitments).filter((n) => !stored.includes(n)) };
}

/** One secret's value, for an admin; every reveal is audited (`release.secret.reveal`). */
export async function revealSecret(
  ctx: ServerContext,
  vault: SecretVault,
  app: string,
  version: string,
  name: string,
  actor: SecretActor,
): Promise<string> {
  await releaseRow(ctx.db, app, version);
  const stored = await ctx.db
    .selectFrom('release_secrets')
    .select('ciphertext')
    .where('app', '=', app)
    .where('version', '=', version)
    .where('name', '=', name)
    .executeTakeFirst();
  if (!stored)
    throw new FlotillaError('FLT_SECRET_MISSING', `${app}@${version} has no stored secret ${name}`, {
      details: { app, version, missing: [name] },
    });
  const { value } = vault.decrypt({ app, version, name }, stored.ciphertext);
  await ctx.audit.record({
    actorType: 'user',
    actorId: actor.userId,
    action: 'release.secret.reveal',
    subjectType: 'release',
    subjectId: `${app}@${version}`,
    sourceIp: actor.sourceIp,
    details: { name },
  });
  return value;
}

/**
 * The release's secrets sealed to one device, for its director target; undefined when the release
 * has none. FLT_SECRET_MISSING when a committed value was never uploaded. `release`: the release's
 * row when the caller read it already (else it is read here).
 */
export async function sealSecretsForDevice(
  ctx: ServerContext,
  vault: SecretVault,
  deviceId: string,
  targetPath: string,
  release?: ReleaseSecretsRow,
): Promise<SealedSecrets | undefined> {
  const row =
    release ??
    (await ctx.db
      .selectFrom('releases')
      .select(['app', 'version', 'target_path', 'secrets'])
      .where('target_path', '=', targetPath)
      .executeTakeFirst());
  if (!row) return undefined;
  const names = Object.keys(commitmentsOf(row));
  if (names.length === 0) return undefined;
  const device = await ctx.db
    .selectFrom('devices')
    .select('public_key')
    .where('id', '=', deviceId)
    .executeTakeFirst();
  if (!device) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${deviceId}`);
  const rows = await ctx.db
    .selectFrom('release_secrets')
    .select(['name', 'ciphertext'])
    .where('app', '=', row.app)
    .where('version', '=', row.version)
    .execute();
  const byName = new Map(rows.map((r) => [r.name, r.ciphertext]));
  const missing = names.filter((n) => !byName.has(n));
  if (missing.length > 0) throw missingError(row.app, row.version, missing);
  const sealed: SealedSecrets = {};
  for (const name of names) {
    const place = { app: row.app, version: row.version, name };
    const opening = vault.decrypt(place, byName.get(name)!);
    sealed[name] = await sealSecret(device.public_key, { deviceId, targetPath, name }, opening);
  }
  return sealed;
}

export function missingError(app: string, version: string, missing: string[]): FlotillaError {
  return new FlotillaError(
    'FLT_SECRET_MISSING',
    `${app}@${version} has secrets without a stored value: ${missing.join(', ')}; the push that created it did not finish; push it again (an unsigned release takes new commitments) or push a new version`,
    { details: { app, version, missing } },
  );
}
