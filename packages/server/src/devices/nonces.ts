/**
 * Single-use nonces for enrollment and token challenges. Stored as SHA-256 with purpose, optional
 * device binding and expiry; taken (deleted) first in the transaction that uses it, which rolls back
 * on any refusal, so a replay, an expired nonce or one issued for another purpose is refused and
 * only the request that succeeds uses a nonce up.
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

/**
 * Takes `nonce` inside the caller's transaction (one statement: the row is deleted and returned),
 * then throws FLT_NONCE_INVALID unless it was live and issued for this purpose/device. The caller's
 * transaction must roll back on any error, which puts a refused or unused nonce back; of two
 * concurrent uses exactly one deletes the row, the other finds none.
 */
export async function takeNonce(
  db: Db,
  nonce: string,
  purpose: NoncePurpose,
  deviceId: string | null,
  now: Date,
): Promise<void> {
  const row = await db
    .deleteFrom('device_nonces')
    .where('nonce_hash', '=', hashSecret(nonce))
    .returning(['purpose', 'device_id', 'expires_at'])
    .executeTakeFirst();
  if (!row) throw invalid('unknown or already used');
  if (row.purpose !== purpose)
    throw invalid(`not issued for ${purpose === 'enroll' ? 'enrollment' : 'a token'}`);
  if (deviceId !== null && row.device_id !== deviceId) throw invalid('bound to another device');
  if (row.expires_at <= now.toISOString()) throw invalid('expired');
}
