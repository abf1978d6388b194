/**
 * `GET state` (the hot path: one token query, 304 on a matching ETag, no writes) and
 * `PUT inventory`.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { DeviceRoutes, DeviceState, FlotillaError, InventoryReport, Type } from '@flotilla/protocol';
import { sourceAddress } from '../../http/source-address.js';
import { loadTags } from '../device-view.js';
import { replaceInventory } from '../inventory.js';
import type { DeviceRuntime } from '../runtime.js';
import type { DeviceAuthenticator } from '../tokens/authenticate.js';

/**
 * `send(undefined)` skips serialization, so a 304 goes out with no body and no Content-Length. A
 * serialized `null` would announce a 4-byte body that never comes, and keep-alive clients would wait.
 */
const NO_BODY = undefined as unknown as null;

export function stateEtag(stateVersion: number, status: string): string {
  return `"${stateVersion}-${status}"`;
}

/** True when an If-None-Match header lists `etag` (weak or strong) or is `*`. */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((part) => {
    const tag = part.trim().replace(/^W\//, '');
    return tag === etag || tag === '*';
  });
}

export function registerStateRoutes(
  base: FastifyInstance,
  rt: DeviceRuntime,
  auth: DeviceAuthenticator,
): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['device'];
  const { ctx } = rt;

  app.get(
    DeviceRoutes.state,
    {
      schema: {
        summary: "The device's desired state; 304 (no body) when If-None-Match matches its ETag",
        tags,
        response: { 200: DeviceState, 304: Type.Null({ description: 'Not modified (no body)' }) },
      },
      preHandler: auth.requireDevice(),
    },
    async (request, reply) => {
      const device = auth.authOf(request);
      const etag = stateEtag(device.stateVersion, device.status);
      void reply.header('etag', etag).header('cache-control', 'no-cache');
      if (etagMatches(request.headers['if-none-match'], etag)) {
        rt.metrics.polls.inc({ result: 'not_modified' });
        return reply.status(304).send(NO_BODY);
      }
      rt.metrics.polls.inc({ result: 'modified' });
      const body: DeviceState = {
        deviceId: device.deviceId,
        status: device.status,
        tags: await loadTags(ctx.db, device.deviceId),
        stateVersion: device.stateVersion,
        pollIntervalMs: ctx.config.devicePollIntervalMs,
      };
      return body;
    },
  );

  app.put(
    DeviceRoutes.inventory,
    {
      schema: {
        summary: "Replace the device's inventory facts",
        description:
          'Limited per device (inventoryWritesPerDevicePerHour): 429 FLT_RATE_LIMITED with Retry-After.',
        tags,
        body: InventoryReport,
        response: { 204: Type.Null() },
      },
      preHandler: auth.requireDevice(),
    },
    async (request, reply) => {
      const device = auth.authOf(request);
      if (device.status === 'rejected') {
        throw new FlotillaError('FLT_DEVICE_REJECTED', 'this device was rejected by an operator');
      }
      await replaceInventory(ctx, device.deviceId, request.body.facts, sourceAddress(request));
      return reply.status(204).send(null);
    },
  );
}
