/**
 * Short-lived device tokens: the device signs a single-use challenge bound to its id and gets a
 * `flt_dt_…` bearer token, stored as its SHA-256. The token embeds the device id so that a request
 * made with the token of a since-revoked device is answered FLT_DEVICE_REVOKED, not "unknown token".
 */
import { FlotillaError } from '@flotilla/protocol';
import {
  SECRET_PREFIX,
  hashSecret,
  randomSecret,
  tokenChallengeMessage,
  verifyMessage,
} from '@flotilla/node-kit';
import type { TokenChallengeResponse, TokenRequest, TokenResponse } from '@flotilla/protocol';
import type { Db } from '../../context.js';
import { loadDeviceRow } from '../device-view.js';
import type { DeviceRow } from '../device-view.js';
import { issueNonce, takeNonce } from '../nonces.js';
import type { DeviceRuntime } from '../runtime.js';

/** `flt_dt_<device id>.<random>` */
export function newDeviceToken(deviceId: string): string {
  return `${SECRET_PREFIX.deviceToken}${deviceId}.${randomSecret('', 32)}`;
}

/** The device id a token names (unauthenticated: use only to explain a refusal). */
export function deviceIdOfToken(token: string): string | null {
  const m = /^flt_dt_([0-9a-f]{32})\./.exec(token);
  return m?.[1] ?? null;
}

async function usableDevice(db: Db, deviceId: string): Promise<DeviceRow> {
  const device = await loadDeviceRow(db, deviceId);
  if (!device)
    throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${deviceId}; enroll first`, {
      details: { deviceId },
    });
  refuseStatus(device.status);
  return device;
}

/** Rejected and revoked devices get no tokens; pending ones do (to learn that they are pending). */
export function refuseStatus(status: DeviceRow['status']): void {
  if (status === 'revoked') throw new FlotillaError('FLT_DEVICE_REVOKED', 'this device was revoked');
  if (status === 'rejected')
    throw new FlotillaError('FLT_DEVICE_REJECTED', 'this device was rejected by an operator');
}

export async function issueChallenge(rt: DeviceRuntime, deviceId: string): Promise<TokenChallengeResponse> {
  const { ctx } = rt;
  await usableDevice(ctx.db, deviceId);
  const now = ctx.clock.now();
  const { nonce, expiresAt } = await issueNonce(ctx.db, 'token', deviceId, now, ctx.config.nonceTtlMs);
  // Only the newest few challenges of a device stay live, however many strangers ask for.
  const evicted = ctx.limits.liveChallenges.add(
    deviceId,
    hashSecret(nonce),
    now.getTime(),
    Date.parse(expiresAt),
  );
  if (evicted.length > 0) {
    await ctx.db
      .deleteFrom('device_nonces')
      .where('nonce_hash', 'in', evicted)
      .where('purpose', '=', 'token')
      .execute();
  }
  return { challenge: nonce, expiresAt };
}

export async function issueToken(rt: DeviceRuntime, req: TokenRequest): Promise<TokenResponse> {
  const { ctx } = rt;
  return ctx.db.transaction().execute(async (trx) => {
    const now = ctx.clock.now();
    await takeNonce(trx, req.challenge, 'token', req.deviceId, now);
    const device = await loadDeviceRow(trx, req.deviceId);
    if (!device) throw new FlotillaError('FLT_DEVICE_NOT_FOUND', `no device ${req.deviceId}`);
    if (
      !verifyMessage(device.public_key, tokenChallengeMessage(req.challenge, req.deviceId), req.signature)
    ) {
      throw new FlotillaError('FLT_SIGNATURE_INVALID', "the signature is not the device's");
    }
    refuseStatus(device.status);
    const token = newDeviceToken(device.id);
    const expiresAt = new Date(now.getTime() + ctx.config.deviceTokenTtlMs).toISOString();
    await trx
      .insertInto('device_tokens')
      .values({
        token_hash: hashSecret(token),
        device_id: device.id,
        created_at: now.toISOString(),
        expires_at: expiresAt,
      })
      .execute();
    return { token, expiresAt, status: device.status };
  });
}
