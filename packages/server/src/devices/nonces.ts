/**
 * Single-use nonces for enrollment and token challenges. Stored as SHA-256 with purpose, optional
 * device binding and expiry; checked before anything is written and consumed in the transaction
 * that succeeds, so a replay, an expired nonce or one issued for another purpose is refused.
 */
import { FlotillaError } from '@flotilla/protocol';
import { hashSecret, randomSecret } from '@flotilla/node-kit';
import type { Db } from '../context.js';

export type NoncePurpose = 'enroll' | 'token';

export interface IssuedNonce {
  nonce: string;
  expiresAt: string;
}

export async function issueNonce(
  db: Db,
  purpose: NoncePurpose,
  deviceId: string | null,
  now: Date,
  ttlMs: number,
): Promise<IssuedNonce> {
  const nonce = randomSecret('', 32);
  const expiresAt = new Date(now.getTime() + ttlMs).toISOString();
  await db
    .insertInto('device_nonces')
    .values({
      nonce_hash: hashSecret(nonce),
      purpose,
      device_id: deviceId,
      created_at: now.toISOString(),
      expires_at: expiresAt,
    })
    .execute();
  return { nonce, expiresAt };
}

function invalid(reason: string): FlotillaError {
  return new FlotillaError('FLT_NONCE_INVALID', `the nonce is ${reason}; request a new one`, {
    details: { reason },
  });
}

/** Throws FLT_NONCE_INVALID unless `nonce` is live, unused and was issued for this purpose/device. */
export async function checkNonce(
  db: Db,
  nonce: string,
  purpose: NoncePurpose,
  deviceId: string | null,
  now: Date,
): Promise<void> {
  const row = await db
    .selectFrom('device_nonces')
    .select(['purpose', 'device_id', 'expires_at'])
    .where('nonce_hash', '=', hashSecret(nonce))
    .executeTakeFirst();
  if (!row) throw invalid('unknown or already used');
  if (row.purpose !== purpose)
    throw invalid(`not issued for ${purpose === 'enroll' ? 'enrollment' : 'a token'}`);
  if (deviceId !== null && row.device_id !== deviceId) throw invalid('bound to another device');
  if (row.expires_at <= now.toISOString()) throw invalid('expired');
}

/**
 * Consumes a checked nonce inside the caller's transaction. Exactly one of two concurrent uses
 * deletes the row; the other gets FLT_NONCE_INVALID and its transaction rolls back.
 */
export async function consumeNonce(db: Db, nonce: string, purpose: NoncePurpose, now: Date): Promise<void> {
  const result = await db
    .deleteFrom('device_nonces')
    .where('nonce_hash', '=', hashSecret(nonce))
    .where('purpose', '=', purpose)
    .where('expires_at', '>', now.toISOString())
    .executeTakeFirst();
  if (Number(result.numDeletedRows) !== 1) throw invalid('already used');
}
