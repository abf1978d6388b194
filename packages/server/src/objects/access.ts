/**
 * Who may read objects: any operator (viewer and up) or an accepted device with a valid token.
 * Object ids are content hashes, so reading needs no per-release check: a device learns ids only
 * from trees it was given, and bytes are useless without the signed root that names them.
 */
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { FlotillaError, SECRET_PREFIX } from '@flotilla/protocol';
import type { DeviceAuthenticator } from '../devices/index.js';

export function requireOperatorOrDevice(auth: DeviceAuthenticator): preHandlerAsyncHookHandler {
  return async function operatorOrDevice(request: FastifyRequest) {
    if (request.principal?.kind === 'user') return;
    const header = request.headers.authorization;
    if (header === undefined || !new RegExp(`^Bearer +${SECRET_PREFIX.deviceToken}`, 'i').test(header))
      throw new FlotillaError('FLT_UNAUTHENTICATED', 'send an operator or device token');
    const device = await auth.authenticate(header);
    requireAccepted(device.status);
    request.principal = { kind: 'device', deviceId: device.deviceId, status: device.status };
  };
}

/** Throws the device lifecycle error for anything but an accepted device. */
export function requireAccepted(status: string): void {
  if (status === 'accepted') return;
  if (status === 'pending') throw new FlotillaError('FLT_DEVICE_PENDING', 'this device awaits acceptance');
  if (status === 'rejected') throw new FlotillaError('FLT_DEVICE_REJECTED', 'this device was rejected');
  throw new FlotillaError('FLT_DEVICE_REVOKED', 'this device was revoked');
}
