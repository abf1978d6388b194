/**
 * Enrollment: a device proves possession of its Ed25519 key and presents a registration key.
 * Everything is checked before anything is written, in one transaction: nonce, signature,
 * registration key; the key's use count is incremented with a conditional UPDATE so concurrent
 * enrollments can never exceed max_uses. Re-enrolling a known key is idempotent.
 */
import { FlotillaError, LIMITS } from '@flotilla/protocol';
import {
  deviceIdFromPublicKey,
  enrollmentMessage,
  hashSecret,
  importPublicKey,
  verifyMessage,
} from '@flotilla/node-kit';
import type { EnrollRequest, EnrollResponse } from '@flotilla/protocol';
import type { Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import { assertValidFacts, factsToRows, identityFacts } from '../facts.js';
import { loadDeviceRow } from '../device-view.js';
import { takeNonce } from '../nonces.js';
import { keyState, parseTags } from '../regkeys/service.js';
import type { RegistrationKeyRow } from '../regkeys/service.js';
import type { DeviceRuntime } from '../runtime.js';
import { insertFactRows } from '../inventory.js';

export interface EnrollOutcome extends EnrollResponse {
  /** False when the public key was already enrolled (idempotent retry). */
  created: boolean;
}

/** Thrown inside the transaction when a concurrent request enrolled the same key first. */
class EnrolledConcurrently extends Error {}

const KEY_REFUSALS = {
  revoked: ['FLT_REGKEY_REVOKED', 'the registration key was revoked'],
  expired: ['FLT_REGKEY_EXPIRED', 'the registration key has expired'],
  exhausted: ['FLT_REGKEY_EXHAUSTED', 'the registration key has been used its maximum number of times'],
} as const;

export async function enrollDevice(
  rt: DeviceRuntime,
  req: EnrollRequest,
  sourceIp: string | null,
): Promise<EnrollOutcome> {
  importPublicKey(req.publicKey);
  assertValidFacts(req.facts ?? {});
  const deviceId = deviceIdFromPublicKey(req.publicKey);
  try {
    const outcome = await attempt(rt, req, deviceId, sourceIp).catch((e: unknown) => {
      if (e instanceof EnrolledConcurrently) return attempt(rt, req, deviceId, sourceIp);
      throw e;
    });
    rt.metrics.enrollments.inc({ result: outcome.created ? 'enrolled' : 'reenrolled' });
    if (outcome.created && (outcome.status === 'pending' || outcome.status === 'accepted'))
      rt.events?.emit({ type: 'device.enrolled', deviceId, status: outcome.status });
    return outcome;
  } catch (e) {
    rt.metrics.enrollments.inc({ result: 'refused' });
    throw e;
  }
}

function attempt(
  rt: DeviceRuntime,
  req: EnrollRequest,
  deviceId: string,
  sourceIp: string | null,
): Promise<EnrollOutcome> {
  const { ctx } = rt;
  return ctx.db.transaction().execute(async (trx) => {
    const now = ctx.clock.now();
    // Taken first (one statement); every refusal below rolls the transaction back and returns it.
    await takeNonce(trx, req.nonce, 'enroll', null, now);
    const message = enrollmentMessage(req.nonce, req.publicKey, req.registrationKey);
    if (req.signature === undefined || !verifyMessage(req.publicKey, message, req.signature)) {
      throw new FlotillaError(
        'FLT_SIGNATURE_INVALID',
        'the signature does not prove possession of the public key',
      );
    }
    const key = await trx
      .selectFrom('registration_keys')
      .selectAll()
      .where('secret_hash', '=', hashSecret(req.registrationKey))
      .executeTakeFirst();
    if (!key) throw new FlotillaError('FLT_REGKEY_INVALID', 'unknown registration key');

    const existing = await loadDeviceRow(trx, deviceId);
    if (existing) {
      if (existing.status === 'revoked')
        throw new FlotillaError('FLT_DEVICE_REVOKED', 'this device was revoked');
      return { deviceId, status: existing.status, created: false };
    }

    const tags = [...new Set([...parseTags(key.tags), ...(req.tags ?? [])])].sort();
    if (tags.length > LIMITS.tagsPerDevice) {
      throw new FlotillaError('FLT_VALIDATION', `a device may have at most ${LIMITS.tagsPerDevice} tags`);
    }
    // Refused early when the key is not active; its use is counted last (useKey), because on
    // PostgreSQL the count's row lock serialises every enrollment with this key until the commit.
    const keyNow = keyState(key, now);
    if (keyNow !== 'active') throw refusal(keyNow);
    const status = Number(key.auto_accept) === 1 ? 'accepted' : 'pending';
    const facts = req.facts ?? {};
    const identity = identityFacts(facts);
    const inserted = await trx
      .insertInto('devices')
      .values({
        id: deviceId,
        public_key: req.publicKey,
        status,
        hostname: identity.hostname,
        registration_key_id: key.id,
        enrolled_at: now.toISOString(),
        status_changed_at: now.toISOString(),
        status_reason: null,
        last_seen_at: now.toISOString(),
        agent_version: identity.agentVersion,
        state_version: 1,
      })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) !== 1) throw new EnrolledConcurrently();
    if (tags.length > 0)
      await trx
        .insertInto('device_tags')
        .values(tags.map((tag) => ({ device_id: deviceId, tag })))
        .execute();
    await insertFactRows(trx, factsToRows(deviceId, facts));
    await ctx.audit.record(
      {
        actorType: 'device',
        actorId: deviceId,
        action: 'device.enroll',
        subjectType: 'device',
        subjectId: deviceId,
        sourceIp,
        details: { registrationKeyId: key.id, status, tags },
      },
      trx,
    );
    await useKey(trx, key, now);
    return { deviceId, status, created: true };
  });
}

/** Counts one use of the key, atomically with its checks; refuses a key that is not active. */
async function useKey(trx: Transaction<Database>, key: RegistrationKeyRow, now: Date): Promise<void> {
  const state = keyState(key, now);
  if (state !== 'active') throw refusal(state);
  const nowIso = now.toISOString();
  const result = await trx
    .updateTable('registration_keys')
    .set((eb) => ({ uses: eb('uses', '+', 1) }))
    .where('id', '=', key.id)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', nowIso)]))
    .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) === 1) return;
  // A concurrent enrollment or revocation got there first: report the key's state as it is now.
  const fresh = await trx
    .selectFrom('registration_keys')
    .selectAll()
    .where('id', '=', key.id)
    .executeTakeFirstOrThrow();
  const now2 = keyState(fresh, now);
  throw refusal(now2 === 'active' ? 'exhausted' : now2);
}

function refusal(state: keyof typeof KEY_REFUSALS): FlotillaError {
  const [code, message] = KEY_REFUSALS[state];
  return new FlotillaError(code, message);
}
