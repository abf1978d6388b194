/** First contact: prove possession of the device key and present the registration key. */
import { DeviceRoutes, EnrollNonceResponse, EnrollResponse } from '@flotilla/protocol';
import { enrollmentMessage, signMessage } from '@flotilla/node-kit';
import type { Facts } from '@flotilla/protocol';
import type { DeviceIdentity } from '../state/identity.js';
import type { JsonHttpClient } from '@flotilla/node-kit';

export interface EnrollInput {
  registrationKey: string;
  tags: readonly string[];
  facts: Facts;
  signal: AbortSignal;
}

/** nonce → sign → enroll. Returns the server's device id and status; throws FlotillaError. */
export async function enrollDevice(
  http: JsonHttpClient,
  identity: DeviceIdentity,
  input: EnrollInput,
): Promise<EnrollResponse> {
  const nonce = await http.request({
    method: 'POST',
    path: DeviceRoutes.enrollNonce,
    schema: EnrollNonceResponse,
    body: {},
    signal: input.signal,
  });
  const { nonce: value } = nonce.body!;
  const signature = signMessage(
    identity.privateKey,
    enrollmentMessage(value, identity.publicKey, input.registrationKey),
  );
  const response = await http.request({
    method: 'POST',
    path: DeviceRoutes.enroll,
    schema: EnrollResponse,
    body: {
      registrationKey: input.registrationKey,
      publicKey: identity.publicKey,
      nonce: value,
      signature,
      tags: [...input.tags],
      facts: input.facts,
    },
    signal: input.signal,
  });
  return response.body!;
}
