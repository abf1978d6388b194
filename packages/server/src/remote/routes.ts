/**
 * Operator routes of remote access (docs/remote-access.md): service commands and stats (HTTP),
 * followed logs (newline-delimited JSON over chunked HTTP), exec and tunnels (WebSocket).
 */
import { Readable } from 'node:stream';
import type { WebSocket } from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest, preHandlerHookHandler } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  AppControlRequest,
  AppName,
  AppStats,
  DEVICE_APP_CONTROL_ROUTE,
  DEVICE_APP_LOG_STREAM_ROUTE,
  DEVICE_APP_STATS_ROUTE,
  DEVICE_EXEC_ROUTE,
  DEVICE_TUNNEL_ROUTE,
  ExecQuery,
  FlotillaError,
  Id,
  LogStreamQuery,
  OPERATOR_MAX_MESSAGE,
  OperatorChannel,
  OperatorStreamEvent,
  TunnelQuery,
  Type,
  WsClose,
} from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';
import type { StreamClose, StreamOpen } from '@flotilla/protocol';
import { requireRole } from '../http/auth.js';
import { IdParams, NoContent, actorOf } from '../http/route-helpers.js';
import { openDeviceStream, appStats, controlApp } from './service.js';
import type { RemoteServices } from './service.js';

const AppParams = Type.Object({ id: Id, app: AppName }, { additionalProperties: false });
const StatsResponse = Type.Intersect([Type.Object({ deviceId: Type.String() }), AppStats]);

/** WebSocket close code after a stream ended with an error (the error event says which). */
const CLOSE_STREAM_ERROR = 4010;

/**
 * A cookie session may open a WebSocket only from this very origin: a browser sends cookies on a
 * cross-site WebSocket upgrade, and no CORS preflight protects it (docs/api-auth.md "CSRF").
 */
const sameOriginForSessions: preHandlerHookHandler = function (request, _reply, done) {
  const principal = request.principal;
  if (principal?.kind === 'user' && principal.via === 'session') {
    const origin = request.headers.origin;
    let host: string | null = null;
    try {
      host = origin === undefined || origin === 'null' ? null : new URL(origin).host;
    } catch {
      host = null;
    }
    if (host === null || host.toLowerCase() !== (request.headers.host ?? '').toLowerCase()) {
      done(new FlotillaError('FLT_CSRF', 'a cookie-authenticated WebSocket needs an Origin of this server'));
      return;
    }
  }
  done();
};

export function registerRemoteRoutes(base: FastifyInstance, svc: RemoteServices): void {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ['remote access'];

  app.post(
    DEVICE_APP_CONTROL_ROUTE,
    {
      schema: {
        summary:
          'Start, stop or restart an app or one of its services on a connected device (409 if offline)',
        tags,
        params: AppParams,
        body: AppControlRequest,
        response: { 204: NoContent },
      },
      preHandler: requireRole('deployer'),
    },
    async (request, reply) => {
      const { id, app: appName } = request.params;
      await controlApp(svc, id, appName, request.body.action, request.body.service, actorOf(request));
      return reply.code(204).send(null);
    },
  );

  app.get(
    DEVICE_APP_STATS_ROUTE,
    {
      schema: {
        summary:
          "Each service's state, health, restarts, CPU and memory, read live from the connected device",
        tags,
        params: AppParams,
        response: { 200: StatsResponse },
      },
      preHandler: requireRole('viewer'),
    },
    async (request) => appStats(svc, request.params.id, request.params.app, actorOf(request)),
  );

  app.get(
    DEVICE_APP_LOG_STREAM_ROUTE,
    {
      schema: {
        summary:
          "An app's log lines, read live from the device; with follow=true, until the client disconnects",
        description:
          'Answers `application/x-ndjson`: one JSON object per line, `{ stream, at?, service?, text }`. ' +
          'An error after the answer started is a last line `{ "error": { code, message } }`.',
        tags,
        params: AppParams,
        querystring: LogStreamQuery,
        response: {
          200: {
            description: 'newline-delimited JSON log lines',
            content: { 'application/x-ndjson': { schema: { type: 'string' } } },
          },
        },
      },
      preHandler: requireRole('deployer'),
    },
    async (request, reply) => {
      const { id, app: appName } = request.params;
      const q = request.query;
      const open: StreamOpen = {
        kind: 'logs',
        app: appName,
        follow: q.follow ?? false,
        ...(q.service !== undefined && { service: q.service }),
        ...(q.tail !== undefined && { tail: q.tail }),
        ...(q.since !== undefined && { since: q.since }),
      };
      // Grants the device more only when the HTTP client reads: the body never buffers more than a window.
      const waiting: (() => void)[] = [];
      const body = new Readable({
        read() {
          for (const done of waiting.splice(0)) done();
        },
      });
      const { stream, ready } = await openDeviceStream(
        svc,
        id,
        open,
        actorOf(request),
        {
          onData: (chunk, _channel, done) => {
            if (body.push(chunk)) done();
            else waiting.push(done);
          },
          onEof: () => undefined,
          onClose: (result) => {
            if (result.error && !body.destroyed) body.push(`${JSON.stringify({ error: result.error })}\n`);
            body.push(null);
          },
        },
        () => undefined,
      );
      reply.raw.on('close', () => {
        if (!stream.closed) stream.reset({});
      });
      await ready;
      return reply.type('application/x-ndjson').header('cache-control', 'no-store').send(body);
    },
  );

  // `wsHandler` (not `websocket: true`, which hides a route from the OpenAPI document): a plain GET
  // is answered 400, an upgrade is carried by `relay`.
  const wsRoute = (
    route: string,
    summary: string,
    querystring: typeof ExecQuery | typeof TunnelQuery,
    toOpen: (request: FastifyRequest) => StreamOpen,
  ) =>
    base.route({
      method: 'GET',
      url: route,
      schema: {
        summary,
        description:
          'WebSocket (admin): connect with `Upgrade: websocket`. Binary messages: `channel (1 byte) | bytes`, ' +
          'channel 0 = stdin / stdout / tunnel bytes, 1 = stderr, at most 32 KiB + 1 each. Text messages: ' +
          '`{"type":"opened"}`, `{"type":"eof"}` (either side: no more data), `{"type":"exit","exitCode":n}`, ' +
          '`{"type":"error","code","message"}` (then the server closes with 4010). Without the upgrade: ' +
          '400 FLT_BAD_REQUEST. See docs/remote-access.md.',
        tags,
        params: IdParams,
        querystring,
      },
      preHandler: [requireRole('admin'), sameOriginForSessions],
      handler: () => {
        throw new FlotillaError(
          'FLT_BAD_REQUEST',
          `${route} is a WebSocket: connect with Upgrade: websocket`,
        );
      },
      wsHandler: (socket, request) => void relay(svc, socket, request, toOpen(request)),
    });

  wsRoute(
    DEVICE_EXEC_ROUTE,
    "Run a command in an app's service, stdio over this WebSocket",
    ExecQuery,
    (request) => {
      const q = request.query as ExecQuery;
      return {
        kind: 'exec',
        app: q.app,
        argv: Array.isArray(q.cmd) ? q.cmd : [q.cmd],
        ...(q.service !== undefined && { service: q.service }),
      };
    },
  );

  wsRoute(
    DEVICE_TUNNEL_ROUTE,
    "One TCP stream to a port of an app's service, or of the device itself, over this WebSocket",
    TunnelQuery,
    (request) => {
      const q = request.query as TunnelQuery;
      return {
        kind: 'tunnel',
        port: q.port,
        ...(q.app !== undefined && { app: q.app }),
        ...(q.service !== undefined && { service: q.service }),
      };
    },
  );
}

/** Carries one operator WebSocket to one device stream, each side only as fast as the other takes it. */
async function relay(svc: RemoteServices, socket: WebSocket, request: FastifyRequest, open: StreamOpen) {
  const { id } = request.params as { id: string };
  const sendEvent = (event: OperatorStreamEvent) => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(event));
  };
  const fail = (code: string, message: string, wsCode = CLOSE_STREAM_ERROR) => {
    sendEvent({ type: 'error', code: code.slice(0, 64), message: message.slice(0, 1024) });
    // A paused socket would never read the client's answer to the close frame.
    socket.resume();
    if (socket.readyState === socket.OPEN) socket.close(wsCode, code);
  };
  // Messages that arrive before the stream exists wait here (the socket is paused at the first).
  const early: { data: Buffer; isBinary: boolean }[] = [];
  let onMessage: ((data: Buffer, isBinary: boolean) => void) | null = null;
  let gone = false;
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (onMessage) return onMessage(data, isBinary);
    early.push({ data, isBinary });
    socket.pause();
  });
  socket.on('close', () => {
    gone = true;
  });
  socket.pause();
  let opened;
  try {
    opened = await openDeviceStream(
      svc,
      id,
      open,
      actorOf(request),
      {
        onOpened: () => sendEvent({ type: 'opened' }),
        onData: (chunk, channel, done) => {
          if (socket.readyState !== socket.OPEN) return done();
          const message = Buffer.allocUnsafe(chunk.length + 1);
          message[0] = channel === 'err' ? OperatorChannel.stderr : OperatorChannel.data;
          chunk.copy(message, 1);
          socket.send(message, () => done());
        },
        onEof: () => sendEvent({ type: 'eof' }),
        onClose: (result: StreamClose) => {
          if (result.exitCode !== undefined) sendEvent({ type: 'exit', exitCode: result.exitCode });
          if (result.error)
            fail(
              result.error.code,
              result.error.message,
              result.error.code === 'FLT_DEVICE_REVOKED' ? WsClose.deviceRevoked : CLOSE_STREAM_ERROR,
            );
          else if (socket.readyState === socket.OPEN) {
            socket.resume();
            socket.close(WsClose.normal, 'stream ended');
          }
        },
      },
      () => undefined,
    );
  } catch (e) {
    const error = e instanceof FlotillaError ? e : new FlotillaError('FLT_INTERNAL', 'internal error');
    if (error.code === 'FLT_INTERNAL') request.log.error({ err: e }, 'could not open a device stream');
    return fail(error.code, error.message);
  }
  const { stream, ready } = opened;
  const operatorGone = () => {
    if (!stream.closed)
      stream.reset({ error: { code: 'FLT_NETWORK', message: 'the operator disconnected' } });
  };
  if (gone) return operatorGone();
  socket.on('close', operatorGone);
  onMessage = (data: Buffer, isBinary: boolean) => {
    if (stream.closed) return;
    if (!isBinary) {
      let event: unknown = null;
      try {
        event = JSON.parse(data.toString('utf8'));
      } catch {
        event = null;
      }
      if (Value.Check(OperatorStreamEvent, event) && event.type === 'eof') return stream.end();
      stream.reset({
        error: { code: 'FLT_STREAM_PROTOCOL', message: 'the operator sent an unknown message' },
      });
      return fail('FLT_STREAM_PROTOCOL', 'text messages may only be {"type":"eof"}', WsClose.protocolError);
    }
    if (data.length > OPERATOR_MAX_MESSAGE || data.length < 1 || data[0] !== OperatorChannel.data) {
      stream.reset({
        error: { code: 'FLT_STREAM_PROTOCOL', message: 'the operator sent a malformed message' },
      });
      return fail(
        'FLT_STREAM_PROTOCOL',
        `binary messages are a channel byte 0 and at most ${OPERATOR_MAX_MESSAGE - 1} bytes`,
        WsClose.protocolError,
      );
    }
    socket.pause();
    void stream.write(data.subarray(1)).then(() => socket.resume());
  };
  for (const m of early.splice(0)) onMessage(m.data, m.isBinary);
  try {
    await ready;
  } catch {
    return; // onClose told the operator
  }
  socket.resume();
}
