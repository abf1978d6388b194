/** Deployment routes: deploy (deployer), status and device apps (viewer), app actions and logs (deployer), reports (device). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  AppLogs,
  AppLogsQuery,
  AppName,
  DEVICE_APP_LOGS_ROUTE,
  DEVICE_REPORTS_ROUTE,
  DEVICE_REPORT_BATCH_ROUTE,
  MAX_REPORT_BATCH_BYTES,
  FlotillaError,
  DeployRequest,
  DeployResponse,
  Deployment,
  DeployStatus,
  DeployStatusQuery,
  DeviceAppAction,
  DeviceAppList,
  Id,
  ReleaseRoutes,
  Type,
  DeviceReport,
  DeviceReportBatch,
} from '@flotilla/protocol';
import { requireAccepted } from '../devices/index.js';
import type { DeviceAuthenticator } from '../devices/index.js';
import { requireRole } from '../http/auth.js';
import { IdParams, NoContent, namedActorOf } from '../http/route-helpers.js';
import { sourceAddress } from '../http/source-address.js';
import { toFlotillaError } from '../http/errors.js';
import { readAppLogs } from './logs.js';
import { recordReport, recordReports } from './reports.js';
import { deploy, deployStatus, deviceApps, getDeployment, sendAppAction } from './service.js';
import type { DeployServices } from './service.js';

const ActionParams = Type.Object(
  { id: Id, app: AppName, action: DeviceAppAction },
  { additionalProperties: false },
);

const AppParams = Type.Object({ id: Id, app: AppName }, { additionalProperties: false });

export function registerDeploymentRoutes(
  base: FastifyInstance,
  svc: DeployServices,
  auth: DeviceAuthenticator,
): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['deployments'];
  const { ctx } = svc;

  app.post(
    ReleaseRoutes.deploy,
    {
      schema: {
        summary: 'Assign a signed release to one device or to the accepted devices a filter selects',
        tags,
        description:
          'Records the deployment and its selected devices, then assigns them in batches of deployBatchSize ' +
          '(one transaction each). 200 when it completed within the request (at most one batch); 202 while ' +
          'it goes on in the background: poll GET /api/v1/deployments/{id} or the release status.',
        body: DeployRequest,
        response: { 200: DeployResponse, 202: DeployResponse },
      },
      preHandler: requireRole('deployer'),
    },
    async (request, reply) => {
      const result = await deploy(svc, request.body, namedActorOf(request));
      return reply.code(result.deployment.state === 'running' ? 202 : 200).send(result);
    },
  );

  app.get(
    ReleaseRoutes.deployment,
    {
      schema: {
        summary: "One deployment's assignment: state, devices selected, assigned and processed so far",
        tags,
        params: IdParams,
        response: { 200: Deployment },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => getDeployment(ctx, request.params.id),
  );

  app.get(
    ReleaseRoutes.deployStatus,
    {
      schema: {
        summary: "Where a release stands: devices per phase and each device's progress",
        tags,
        querystring: DeployStatusQuery,
        response: { 200: DeployStatus },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => deployStatus(ctx, request.query.app, request.query.version),
  );

  app.get(
    ReleaseRoutes.deviceApps,
    {
      schema: {
        summary: "A device's apps: assigned and committed releases, phase, progress, error",
        tags,
        params: IdParams,
        response: { 200: DeviceAppList },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => deviceApps(ctx, request.params.id),
  );

  app.post(
    ReleaseRoutes.deviceAppAction,
    {
      schema: {
        summary: 'Ask a connected device to roll an app back or restart it (409 if offline)',
        tags,
        params: ActionParams,
        response: { 204: NoContent },
      },
      preHandler: requireRole('deployer'),
    },
    async (request, reply) => {
      const { id, app: appName, action } = request.params;
      await sendAppAction(svc, id, appName, action, namedActorOf(request));
      return reply.code(204).send(null);
    },
  );

  app.get(
    DEVICE_APP_LOGS_ROUTE,
    {
      schema: {
        summary:
          "The tail of an app's stdout/stderr, read live from the connected device (409 if offline, 504 if it does not answer)",
        tags,
        params: AppParams,
        querystring: AppLogsQuery,
        response: { 200: AppLogs },
      },
      preHandler: requireRole('deployer'),
    },
    async (request) =>
      readAppLogs(svc, request.params.id, request.params.app, request.query, namedActorOf(request)),
  );

  app.post(
    DEVICE_REPORTS_ROUTE,
    {
      schema: {
        summary: "The agent's report of an update phase, or of its running release's process",
        description: 'Limited per device (reportsPerDevicePerMinute): 429 FLT_RATE_LIMITED with Retry-After.',
        tags: ['device'],
        body: DeviceReport,
        response: { 204: NoContent },
      },
      // A token checked up to DEVICE_AUTH_CACHE_MS ago will do (no state version needed).
      preHandler: auth.requireDevice({ cached: true }),
    },
    async (request, reply) => {
      const device = auth.authOf(request);
      requireAccepted(device.status);
      await ctx.limits.report.take(device.deviceId, 'too many update reports from this device');
      await recordReport(ctx, svc.events, device.deviceId, request.body, sourceAddress(request));
      return reply.code(204).send(null);
    },
  );

  app.post(
    DEVICE_REPORT_BATCH_ROUTE,
    {
      schema: {
        summary: "Several of the agent's reports in one request, recorded in order in one transaction",
        description:
          'All or none: the first report refused fails the request with its own error code (e.g. 409 ' +
          'FLT_REPORT_STALE, 400 FLT_VALIDATION) and details.index, the position of that report; nothing ' +
          `of the batch is recorded. At most ${MAX_REPORT_BATCH_BYTES} bytes, or bodyLimitBytes if lower (413 FLT_BODY_TOO_LARGE). Each ` +
          'report counts against reportsPerDevicePerMinute: 429 FLT_RATE_LIMITED with Retry-After.',
        tags: ['device'],
        body: DeviceReportBatch,
        response: { 204: NoContent },
      },
      // Never more than the server's own body limit (an operator who lowered it meant every route).
      bodyLimit: Math.min(MAX_REPORT_BATCH_BYTES, ctx.config.bodyLimitBytes),
      // A report that does not validate is named by its position; refused before the device's
      // authentication, as every route's body is.
      attachValidation: true,
      preHandler: [
        (request, _reply, done) => {
          done(request.validationError ? batchValidationError(request.validationError) : undefined);
        },
        // A token checked up to DEVICE_AUTH_CACHE_MS ago will do (no state version needed).
        auth.requireDevice({ cached: true }),
      ],
    },
    async (request, reply) => {
      const device = auth.authOf(request);
      requireAccepted(device.status);
      const { reports } = request.body;
      await ctx.limits.report.take(
        device.deviceId,
        'too many update reports from this device',
        reports.length,
      );
      await recordReports(ctx, svc.events, device.deviceId, reports, sourceAddress(request));
      return reply.code(204).send(null);
    },
  );
}

/** FLT_VALIDATION of a batch, `details.index` naming the first report that does not validate. */
function batchValidationError(error: Error): FlotillaError {
  const flt = toFlotillaError(error);
  const issues = (error as { validation?: { instancePath?: string }[] }).validation ?? [];
  const indexes = issues
    .map((issue) => /^\/reports\/(\d+)(\/|$)/.exec(issue.instancePath ?? '')?.[1])
    .filter((i): i is string => i !== undefined)
    .map(Number);
  if (indexes.length === 0) return flt;
  const details = typeof flt.details === 'object' && flt.details !== null ? flt.details : {};
  return new FlotillaError(flt.code, flt.message, { details: { ...details, index: Math.min(...indexes) } });
}
