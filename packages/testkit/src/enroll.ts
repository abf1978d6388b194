/** A device enrolled over the real device API, as an agent does (for tests that need one). */
import {
  enrollmentMessage,
  generateEd25519,
  JsonHttpClient,
  signMessage,
  tokenChallengeMessage,
} from '@flotilla/node-kit';
import { DeviceRoutes, Type } from '@flotilla/protocol';
import type { Facts } from '@flotilla/protocol';

// Only the fields used here (the protocol's own schemas carry date-time formats, which a test
// process need not have registered).
const NonceAnswer = Type.Object({ nonce: Type.String() });
const ChallengeAnswer = Type.Object({ challenge: Type.String() });
const DeviceIdAnswer = Type.Object({ deviceId: Type.String() });
const TokenAnswer = Type.Object({ token: Type.String() });

export interface EnrolledDevice {
  deviceId: string;
  /** PEM of the device key (ed25519). */
  privateKeyPem: string;
  publicKey: string;
}

function client(url: string): JsonHttpClient {
  return new JsonHttpClient({ baseUrl: url, timeoutMs: 30_000, maxResponseBytes: 1024 * 1024 });
}

/** Enrolls a new device key with `registrationKey` at the server `url`. */
export async function enrollDevice(
  url: string,
  registrationKey: string,
  extra: { tags?: string[]; facts?: Facts } = {},
): Promise<EnrolledDevice> {
  const http = client(url);
  const { privateKeyPem, publicKey } = generateEd25519();
  const { body: nonce } = await http.request({
    method: 'POST',
    path: DeviceRoutes.enrollNonce,
    schema: NonceAnswer,
    body: {},
  });
  const signature = signMessage(privateKeyPem, enrollmentMessage(nonce!.nonce, publicKey, registrationKey));
  const { body } = await http.request({
    method: 'POST',
    path: DeviceRoutes.enroll,
    schema: DeviceIdAnswer,
    body: { registrationKey, publicKey, nonce: nonce!.nonce, signature, ...extra },
  });
  return { deviceId: body!.deviceId, privateKeyPem, publicKey };
}

/** A device token for an accepted device (challenge signed with its key). */
export async function deviceToken(url: string, device: EnrolledDevice): Promise<string> {
  const http = client(url);
  const { deviceId, privateKeyPem } = device;
  const { body: challenge } = await http.request({
    method: 'POST',
    path: DeviceRoutes.tokenChallenge,
    schema: ChallengeAnswer,
    body: { deviceId },
  });
  const { body } = await http.request({
    method: 'POST',
    path: DeviceRoutes.token,
    schema: TokenAnswer,
    body: {
      deviceId,
      challenge: challenge!.challenge,
      signature: signMessage(privateKeyPem, tokenChallengeMessage(challenge!.challenge, deviceId)),
    },
  });
  return body!.token;
}
