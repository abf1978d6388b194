/**
 * Reading an app's logs from a connected device (docs/updates.md "Reading an app's logs"): the
 * server asks over the control channel and waits for the answer; nothing is stored on the server.
 */
import { AgentCommands, FlotillaError, LOGS_DEFAULT_BYTES, ServerCommands } from '@flotilla/protocol';
import type { AgentFrameDataOf, AppLogs, AppLogsQuery, ErrorCode, LogsRequestData } from '@flotilla/protocol';
import { agentFrame } from '../devices/index.js';
import type { Creator } from '../releases/service.js';
import { requireDevice } from './service.js';
import type { DeployServices } from './service.js';

/**
 * Asks the device for the tail of `app`'s logs; the read is audited (logs can hold secrets). The
 * actor is an operator, or a server component (`{ system }`, e.g. the rollout engine keeping the
 * tail of a failed device).
 */
export async function readAppLogs(
  svc: DeployServices,
  deviceId: string,
  app: string,
  query: AppLogsQuery,
  actor: Creator | { system: string },
): Promise<AppLogs> {
  const { ctx } = svc;
  await requireDevice(ctx, deviceId);
  const request: LogsRequestData = {
    app,
    stream: query.stream ?? 'both',
    maxBytes: query.maxBytes ?? LOGS_DEFAULT_BYTES,
  };
  const answer = await svc.devices.presence.request(deviceId, ServerCommands.logs, request);
  if (answer.command !== AgentCommands.logsResult)
    throw new FlotillaError(
      'FLT_RUNTIME_UNSUPPORTED',
      `the agent on device ${deviceId} cannot read logs (it answered ${answer.command}); upgrade it`,
      { details: { deviceId } },
    );
  let result: AgentFrameDataOf<'logs-result'>;
  try {
    const frame = agentFrame(answer);
    if (frame.command !== AgentCommands.logsResult) throw new Error(`answered ${frame.command}`);
    result = frame.data;
  } catch (e) {
    throw new FlotillaError('FLT_NETWORK', `device ${deviceId} sent an invalid logs-result`, { cause: e });
  }
  if ('error' in result) throw deviceError(deviceId, result.error);
  if (result.app !== app)
    throw new FlotillaError('FLT_NETWORK', `device ${deviceId} answered with the logs of another app`);
  await ctx.audit.record({
    actorType: 'system' in actor ? 'system' : 'user',
    actorId: 'system' in actor ? actor.system : actor.userId,
    action: 'device.logs.read',
    subjectType: 'device',
    subjectId: deviceId,
    sourceIp: 'system' in actor ? null : actor.sourceIp,
    details: { app, stream: request.stream, maxBytes: request.maxBytes },
  });
  return result;
}

/**
 * Codes a device may pass through to the operator. Any other (an auth code, a name like
 * `constructor`) becomes FLT_RUNTIME_FAILED: a device must not steer the operator's client.
 */
const DEVICE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'FLT_APP_NOT_INSTALLED',
  'FLT_RUNTIME_UNSUPPORTED',
  'FLT_BAD_REQUEST',
  'FLT_VALIDATION',
  'FLT_IO',
]);

function deviceError(deviceId: string, error: { code: string; message: string }): FlotillaError {
  const known = DEVICE_CODES.has(error.code as ErrorCode);
  const code: ErrorCode = known ? (error.code as ErrorCode) : 'FLT_RUNTIME_FAILED';
  return new FlotillaError(code, `device ${deviceId}: ${error.message}`, {
    details: { deviceId, deviceCode: error.code },
  });
}
