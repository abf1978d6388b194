/** How the agent reacts to an error from the server, decided by its stable code only. */
import { isFlotillaError } from '@flotilla/protocol';

export type ErrorReaction =
  /** Try again later with backoff: the network, a proxy or the server is having a bad moment. */
  | 'retry'
  /** The bearer token is no longer good: get a new one, then retry. */
  | 'refresh-token'
  /** The operator rejected this device: stop contacting the server. */
  | 'rejected'
  /** The operator revoked this device: stop contacting the server for good. */
  | 'revoked'
  /** The server does not know this device (its database was reset): enroll again. */
  | 'unknown-device'
  /** Nothing the agent can fix by retrying (bad registration key, a request the server refuses). */
  | 'fatal';

export function reactionTo(error: unknown): ErrorReaction {
  if (!isFlotillaError(error)) return 'retry';
  switch (error.code) {
    case 'FLT_TOKEN_EXPIRED':
    case 'FLT_TOKEN_INVALID':
    case 'FLT_UNAUTHENTICATED':
      return 'refresh-token';
    case 'FLT_DEVICE_REJECTED':
      return 'rejected';
    case 'FLT_DEVICE_REVOKED':
      return 'revoked';
    case 'FLT_DEVICE_NOT_FOUND':
      return 'unknown-device';
    case 'FLT_REGKEY_INVALID':
    case 'FLT_REGKEY_REVOKED':
    case 'FLT_REGKEY_EXPIRED':
    case 'FLT_REGKEY_EXHAUSTED':
    case 'FLT_PUBLIC_KEY_INVALID':
    case 'FLT_VALIDATION':
    case 'FLT_FORBIDDEN':
      return 'fatal';
    default:
      // Nonce/challenge races, 5xx, 404 from a proxy, rate limits: all pass with time.
      return 'retry';
  }
}
