/** Helpers for device tests: registration keys, real Ed25519 enrollment, tokens, table snapshots. */
import assert from 'node:assert/strict';
import { DeviceRoutes, OperatorRoutes } from '@flotilla/protocol';
import { enrollmentMessage, generateEd25519, signMessage, tokenChallengeMessage } from '@flotilla/node-kit';
import type { CreateRegistrationKeyRequest, CreateRegistrationKeyResponse, Facts } from '@flotilla/protocol';
import type { Ed25519KeyPair } from '@flotilla/node-kit';
import type { LightMyRequestResponse } from 'fastify';
import { bearer } from '../helpers/app.js';
import type { TestApp } from '../helpers/app.js';

export async function createKey(
  t: TestApp,
  body: CreateRegistrationKeyRequest,
): Promise<CreateRegistrationKeyResponse> {
  const res = await t.app.inject({
    method: 'POST',
    url: OperatorRoutes.registrationKeys,
    headers: bearer(t.adminToken),
    payload: body,
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json<CreateRegistrationKeyResponse>();
}

export async function enrollNonce(t: TestApp): Promise<string> {
  const res = await t.app.inject({ method: 'POST', url: DeviceRoutes.enrollNonce });
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ nonce: string }>().nonce;
}

export interface EnrollOptions {
  kp?: Ed25519KeyPair;
  nonce?: string;
  tags?: string[];
  facts?: Facts;
  /** Sign with this registration key instead of the one presented. */
  signedKey?: string;
  signature?: string;
}

export async function enrollRaw(
  t: TestApp,
  registrationKey: string,
  opts: EnrollOptions = {},
): Promise<LightMyRequestResponse> {
  const kp = opts.kp ?? generateEd25519();
  const nonce = opts.nonce ?? (await enrollNonce(t));
  const signature =
    opts.signature ??
    signMessage(kp.privateKeyPem, enrollmentMessage(nonce, kp.publicKey, opts.signedKey ?? registrationKey));
  return t.app.inject({
    method: 'POST',
    url: DeviceRoutes.enroll,
    payload: {
      registrationKey,
      publicKey: kp.publicKey,
      nonce,
      signature,
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...(opts.facts ? { facts: opts.facts } : {}),
    },
  });
}

export interface EnrolledDevice {
  kp: Ed25519KeyPair;
  id: string;
  status: string;
}

export async function enroll(
  t: TestApp,
  registrationKey: string,
  opts: EnrollOptions = {},
): Promise<EnrolledDevice> {
  const kp = opts.kp ?? generateEd25519();
  const res = await enrollRaw(t, registrationKey, { ...opts, kp });
  assert.ok(res.statusCode === 201 || res.statusCode === 200, res.body);
  const body = res.json<{ deviceId: string; status: string }>();
  return { kp, id: body.deviceId, status: body.status };
}

export async function challenge(t: TestApp, deviceId: string): Promise<LightMyRequestResponse> {
  return t.app.inject({ method: 'POST', url: DeviceRoutes.tokenChallenge, payload: { deviceId } });
}

export async function tokenRaw(
  t: TestApp,
  device: EnrolledDevice,
  challengeText?: string,
): Promise<LightMyRequestResponse> {
  let c = challengeText;
  if (c === undefined) {
    const res = await challenge(t, device.id);
    assert.equal(res.statusCode, 200, res.body);
    c = res.json<{ challenge: string }>().challenge;
  }
  return t.app.inject({
    method: 'POST',
    url: DeviceRoutes.token,
    payload: {
      deviceId: device.id,
      challenge: c,
      signature: signMessage(device.kp.privateKeyPem, tokenChallengeMessage(c, device.id)),
    },
  });
}

export async function deviceToken(t: TestApp, device: EnrolledDevice): Promise<string> {
  const res = await tokenRaw(t, device);
  assert.equal(res.statusCode, 200, res.body);
  return res.json<{ token: string }>().token;
}

/** An enrolled, accepted device with a token. */
export async function acceptedDevice(
  t: TestApp,
  opts: EnrollOptions = {},
): Promise<EnrolledDevice & { token: string }> {
  const { secret } = await createKey(t, { name: `auto-${Math.random()}`, autoAccept: true });
  const device = await enroll(t, secret, opts);
  return { ...device, token: await deviceToken(t, device) };
}

export async function operatorPost(
  t: TestApp,
  template: string,
  id: string,
  body: unknown,
  token = t.adminToken,
) {
  return t.app.inject({
    method: 'POST',
    url: template.replace(':id', id),
    headers: bearer(token),
    payload: body as object,
  });
}

/** Row counts of every table enrollment may touch, plus the sum of key uses. */
export async function snapshot(t: TestApp): Promise<Record<string, number>> {
  const db = t.ctx.db;
  const count = async (
    table: 'devices' | 'device_tags' | 'device_facts' | 'device_nonces' | 'device_tokens' | 'audit_log',
  ) =>
    Number(
      (
        await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number | string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const uses = await db
    .selectFrom('registration_keys')
    .select((eb) => eb.fn.sum<number | string>('uses').as('n'))
    .executeTakeFirst();
  return {
    devices: await count('devices'),
    tags: await count('device_tags'),
    facts: await count('device_facts'),
    nonces: await count('device_nonces'),
    tokens: await count('device_tokens'),
    audit: await count('audit_log'),
    uses: Number(uses?.n ?? 0),
  };
}

export function errorCode(res: LightMyRequestResponse): string {
  return res.json<{ error: { code: string } }>().error.code;
}
