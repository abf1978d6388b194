/**
 * The device-facing API: enrollment, tokens, state polling, inventory, and the WebSocket control
 * channel. Paths are relative to `/api/v1/device`.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { Facts, Id, Tags, Timestamp } from './common.js';

export const DEVICE_API_PREFIX = '/api/v1/device';
export const DeviceRoutes = {
  enrollNonce: `${DEVICE_API_PREFIX}/enroll/nonce`,
  enroll: `${DEVICE_API_PREFIX}/enroll`,
  tokenChallenge: `${DEVICE_API_PREFIX}/token/challenge`,
  token: `${DEVICE_API_PREFIX}/token`,
  state: `${DEVICE_API_PREFIX}/state`,
  inventory: `${DEVICE_API_PREFIX}/inventory`,
  ws: `${DEVICE_API_PREFIX}/ws`,
} as const;

export const DeviceStatus = Type.Union(
  [Type.Literal('pending'), Type.Literal('accepted'), Type.Literal('rejected'), Type.Literal('revoked')],
  { description: 'pending → accepted | rejected; accepted → revoked; rejected → accepted; revoked is final' },
);
export type DeviceStatus = Static<typeof DeviceStatus>;

const PublicKey = Type.String({
  minLength: 43,
  maxLength: 43,
  description: 'Raw Ed25519 public key, base64url',
});
const Signature = Type.String({ minLength: 86, maxLength: 86, description: 'Ed25519 signature, base64url' });
const Nonce = Type.String({ minLength: 16, maxLength: 128 });

export const EnrollNonceResponse = Type.Object({ nonce: Nonce, expiresAt: Timestamp });
export type EnrollNonceResponse = Static<typeof EnrollNonceResponse>;

export const EnrollRequest = Type.Object(
  {
    registrationKey: Type.String({ minLength: 8, maxLength: 256 }),
    publicKey: PublicKey,
    nonce: Nonce,
    signature: Type.Optional(Signature),
    tags: Type.Optional(Tags),
    facts: Type.Optional(Facts),
  },
  {
    additionalProperties: false,
    description: 'signature = Ed25519 over enrollmentMessage(nonce, publicKey, registrationKey)',
  },
);
export type EnrollRequest = Static<typeof EnrollRequest>;

export const EnrollResponse = Type.Object({ deviceId: Id, status: DeviceStatus });
export type EnrollResponse = Static<typeof EnrollResponse>;

export const TokenChallengeRequest = Type.Object({ deviceId: Id }, { additionalProperties: false });
export type TokenChallengeRequest = Static<typeof TokenChallengeRequest>;
export const TokenChallengeResponse = Type.Object({ challenge: Nonce, expiresAt: Timestamp });
export type TokenChallengeResponse = Static<typeof TokenChallengeResponse>;

export const TokenRequest = Type.Object(
  { deviceId: Id, challenge: Nonce, signature: Signature },
  {
    additionalProperties: false,
    description: 'signature = Ed25519 over tokenChallengeMessage(challenge, deviceId)',
  },
);
export type TokenRequest = Static<typeof TokenRequest>;
export const TokenResponse = Type.Object({
  token: Type.String(),
  expiresAt: Timestamp,
  status: DeviceStatus,
});
export type TokenResponse = Static<typeof TokenResponse>;

/**
 * What the server wants the device to be. Served with an ETag; a poll with a matching
 * If-None-Match gets 304 and no body. Later issues add `apps` (assigned releases).
 */
export const DeviceState = Type.Object({
  deviceId: Id,
  status: DeviceStatus,
  tags: Tags,
  stateVersion: Type.Integer({ minimum: 0, description: 'Increments on every change of the desired state' }),
  pollIntervalMs: Type.Integer({ minimum: 1000 }),
});
export type DeviceState = Static<typeof DeviceState>;

export const InventoryReport = Type.Object({ facts: Facts }, { additionalProperties: false });
export type InventoryReport = Static<typeof InventoryReport>;
