/** `POST token/challenge` and `POST token`. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  DeviceRoutes,
  TokenChallengeRequest,
  TokenChallengeResponse,
  TokenRequest,
  TokenResponse,
} from '@flotilla/protocol';
import { addressKey } from '../../http/connections.js';
import { sourceAddress } from '../../http/source-address.js';
import type { DeviceRuntime } from '../runtime.js';
import { issueChallenge, issueToken } from './service.js';

export function registerTokenRoutes(base: FastifyInstance, rt: DeviceRuntime): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['device'];

  app.post(
    DeviceRoutes.tokenChallenge,
    {
      schema: {
        summary: 'A single-use challenge for this device to sign',
        description:
          'Limited per address (429 FLT_RATE_LIMITED with Retry-After); a device keeps only its newest few live challenges.',
        tags,
        body: TokenChallengeRequest,
        response: { 200: TokenChallengeResponse },
      },
    },
    async (request) => {
      await rt.ctx.limits.tokenChallenge.take(
        addressKey(sourceAddress(request)),
        'too many token challenges for this address',
      );
      return issueChallenge(rt, request.body.deviceId);
    },
  );

  app.post(
    DeviceRoutes.token,
    {
      schema: {
        summary: 'Exchange a signed challenge for a short-lived device token',
        tags,
        body: TokenRequest,
        response: { 200: TokenResponse },
      },
    },
    async (request) => issueToken(rt, request.body),
  );
}
