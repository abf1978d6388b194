/**
 * Registration keys (mig-loader's model): a secret shown once and stored as its SHA-256, with
 * optional expiry, use limit, default tags and auto-acceptance. Every change is audited in the
 * transaction that makes it.
 */
import { FlotillaError, parseDurationMs } from '@flotilla/protocol';
import { SECRET_PREFIX, hashSecret, randomId, randomSecret } from '@flotilla/node-kit';
import type {
  CreateRegistrationKeyRequest,
  CreateRegistrationKeyResponse,
  RegistrationKey,
} from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db, ServerContext } from '../../context.js';
import type { RegistrationKeysTable } from '../../db/schema.js';
import type { Actor } from '../../users/service.js';
import { auditOperator } from '../audit.js';
import { assertStorableText } from '../text.js';

export type RegistrationKeyRow = Selectable<RegistrationKeysTable>;
export type RegistrationKeyState = RegistrationKey['state'];

/** Why a key cannot enroll a new device at `now`, or 'active'. Revocation wins over expiry. */
export function keyState(row: RegistrationKeyRow, now: Date): RegistrationKeyState {
  if (row.revoked_at !== null) return 'revoked';
  if (row.expires_at !== null && row.expires_at <= now.toISOString()) return 'expired';
  if (row.max_uses !== null && Number(row.uses) >= Number(row.max_uses)) return 'exhausted';
  return 'active';
}

export function toRegistrationKey(row: RegistrationKeyRow, now: Date): RegistrationKey {
  return {
    id: row.id,
    name: row.name,
    tags: parseTags(row.tags),
    maxUses: row.max_uses === null ? null : Number(row.max_uses),
    uses: Number(row.uses),
    autoAccept: Number(row.auto_accept) === 1,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    createdAt: row.created_at,
    createdBy: row.created_by,
    state: keyState(row, now),
  };
}

export function parseTags(json: string): string[] {
  const parsed: unknown = JSON.parse(json);
  return Array.isArray(parsed) ? parsed.filter((t): t is string => typeof t === 'string') : [];
}

export async function createRegistrationKey(
  ctx: ServerContext,
  input: CreateRegistrationKeyRequest,
  actor: Actor,
): Promise<CreateRegistrationKeyResponse> {
  assertStorableText(input.name, 'name');
  const now = ctx.clock.now();
  const expiresAt = input.expiresIn === undefined ? null : expiryAfter(now, input.expiresIn);
  const secret = randomSecret(SECRET_PREFIX.registrationKey);
  const row: RegistrationKeyRow = {
    id: randomId('rk_'),
    name: input.name,
    secret_hash: hashSecret(secret),
    tags: JSON.stringify([...new Set(input.tags ?? [])].sort()),
    max_uses: input.maxUses ?? null,
    uses: 0,
    auto_accept: input.autoAccept === true ? 1 : 0,
    expires_at: expiresAt,
    revoked_at: null,
    created_at: now.toISOString(),
    created_by: actor.userId,
  };
  await ctx.db.transaction().execute(async (trx) => {
    await trx.insertInto('registration_keys').values(row).execute();
    await auditOperator(
      ctx,
      trx,
      actor,
      'regkey.create',
      { type: 'registration_key', id: row.id },
      {
        name: row.name,
        tags: parseTags(row.tags),
        maxUses: row.max_uses,
        autoAccept: row.auto_accept === 1,
        expiresAt,
      },
    );
  });
  return { key: toRegistrationKey(row, now), secret };
}

/** `now` + a duration as ISO text; FLT_VALIDATION past the last representable date. */
function expiryAfter(now: Date, duration: string): string {
  const at = new Date(now.getTime() + parseDurationMs(duration));
  if (Number.isNaN(at.getTime())) {
    throw new FlotillaError('FLT_VALIDATION', `expiresIn "${duration}" is too far in the future`);
  }
  return at.toISOString();
}

export async function listRegistrationKeys(ctx: ServerContext): Promise<RegistrationKey[]> {
  const rows = await ctx.db
    .selectFrom('registration_keys')
    .selectAll()
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  const now = ctx.clock.now();
  return rows.map((r) => toRegistrationKey(r, now));
}

export async function getRegistrationKeyRow(db: Db, id: string): Promise<RegistrationKeyRow> {
  const row = await db.selectFrom('registration_keys').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new FlotillaError('FLT_NOT_FOUND', `no registration key ${id}`, { details: { id } });
  return row;
}

/** Revokes a key: no new device can enroll with it. Devices it enrolled are untouched. Idempotent. */
export async function revokeRegistrationKey(
  ctx: ServerContext,
  id: string,
  actor: Actor,
): Promise<RegistrationKey> {
  return ctx.db.transaction().execute(async (trx) => {
    const now = ctx.clock.now();
    const before = await getRegistrationKeyRow(trx, id);
    if (before.revoked_at !== null) return toRegistrationKey(before, now);
    const revokedAt = now.toISOString();
    await trx.updateTable('registration_keys').set({ revoked_at: revokedAt }).where('id', '=', id).execute();
    await auditOperator(
      ctx,
      trx,
      actor,
      'regkey.revoke',
      { type: 'registration_key', id },
      { name: before.name, uses: Number(before.uses) },
    );
    return toRegistrationKey({ ...before, revoked_at: revokedAt }, now);
  });
}
