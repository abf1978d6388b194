/** The operator's devices API: list and show (viewer), accept/reject/tags (deployer), revoke (admin). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  Device,
  DeviceActionRequest,
  DeviceList,
  DeviceListQuery,
  DeviceTagsRequest,
  OperatorRoutes,
} from '@flotilla/protocol';
import type { Role } from '@flotilla/protocol';
import { requireRole } from '../../http/auth.js';
import { IdParams, actorOf } from '../../http/route-helpers.js';
import { viewContext } from '../runtime.js';
import type { DeviceRuntime } from '../runtime.js';
import { listDevices } from './list.js';
import { changeStatus, changeTags, getDevice } from './service.js';
import type { DeviceAction } from './service.js';

const ACTIONS: { action: DeviceAction; route: string; role: Role; summary: string }[] = [
  {
    action: 'accept',
    route: OperatorRoutes.deviceAccept,
    role: 'deployer',
    summary: 'Accept a pending or rejected device',
  },
  {
    action: 'reject',
    route: OperatorRoutes.deviceReject,
    role: 'deployer',
    summary: 'Reject a pending device',
  },
  {
    action: 'revoke',
    route: OperatorRoutes.deviceRevoke,
    role: 'admin',
    summary: 'Revoke a device for good: its tokens are deleted and its connection closed',
  },
];

export function registerDeviceRoutes(base: FastifyInstance, rt: DeviceRuntime): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['devices'];

  app.get(
    OperatorRoutes.devices,
    {
      schema: {
        summary: 'List devices (RSQL filter, sort, pagination)',
        tags,
        querystring: DeviceListQuery,
        response: { 200: DeviceList },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => listDevices(viewContext(rt), request.query),
  );

  app.get(
    OperatorRoutes.device,
    {
      schema: {
        summary: 'One device with its facts and tags',
        tags,
        params: IdParams,
        response: { 200: Device },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => getDevice(rt, request.params.id),
  );

  for (const { action, route, role, summary } of ACTIONS) {
    app.post(
      route,
      {
        schema: { summary, tags, params: IdParams, body: DeviceActionRequest, response: { 200: Device } },
        // The body (a reason) is optional: a bodyless POST is the same as `{}`.
        preValidation: (request, _reply, done) => {
          request.body ??= {};
          done();
        },
        preHandler: requireRole(role),
      },
      async (request) =>
        changeStatus(rt, request.params.id, action, request.body.reason ?? null, actorOf(request)),
    );
  }

  app.post(
    OperatorRoutes.deviceTags,
    {
      schema: {
        summary: 'Add, remove or set tags',
        tags,
        params: IdParams,
        body: DeviceTagsRequest,
        response: { 200: Device },
      },
      preHandler: requireRole('deployer'),
    },
    async (request) => changeTags(rt, request.params.id, request.body, actorOf(request)),
  );
}
