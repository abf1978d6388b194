/**
 * `GET ws`: the device control channel. The bearer device token is checked by the route's
 * preHandler, before the upgrade completes (401/403 otherwise). A ws ping goes out every
 * heartbeatIntervalMs; a connection that misses two is terminated, and connections are reconciled
 * with the database (see reconcile.ts).
 */
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { DeviceRoutes, WS_MAX_FRAME_BYTES, WsClose } from '@flotilla/protocol';
import { sourceAddress } from '../../http/source-address.js';
import type { DeviceRuntime } from '../runtime.js';
import type { DeviceAuthenticator } from '../tokens/authenticate.js';
import { refuseStatus } from '../tokens/service.js';
import { DeviceConnection } from './connection.js';
import { reconcileConnections } from './reconcile.js';

/**
 * The transport's own hard limit. Frames between WS_MAX_FRAME_BYTES and this are read and refused
 * with close code 4000; larger ones are cut off by the ws library itself (1009).
 */
const TRANSPORT_MAX_PAYLOAD = WS_MAX_FRAME_BYTES * 4;
/** How long a device has to answer the server's close frame at shutdown before it is dropped (ms). */
const CLOSE_GRACE_MS = 2_000;

export async function registerGateway(
  app: FastifyInstance,
  rt: DeviceRuntime,
  auth: DeviceAuthenticator,
): Promise<void> {
  const connections = new Set<DeviceConnection>();
  let closing = false;
  // Devices are marked offline now, while the database is still open; the close handshakes finish
  // later, and a peer that has not answered within the grace period is dropped, so that shutdown
  // never waits on a device.
  const closeAll = () => {
    closing = true;
    clearInterval(timer);
    for (const c of connections) {
      rt.presence.detach(c.deviceId, c);
      c.close(WsClose.goingAway, 'server shutting down');
    }
    setTimeout(() => {
      for (const c of connections) c.terminate();
    }, CLOSE_GRACE_MS).unref();
  };
  await app.register(websocket, {
    options: { maxPayload: TRANSPORT_MAX_PAYLOAD },
    preClose(done) {
      closeAll();
      this.websocketServer.close(() => undefined);
      done();
    },
  });
  let reconciling: Promise<void> | null = null;
  const timer = setInterval(() => {
    for (const c of connections) c.heartbeat();
    reconciling ??= reconcileConnections(rt.ctx, connections)
      .catch((e: unknown) => rt.ctx.log.warn({ err: e }, 'could not reconcile device connections'))
      .finally(() => {
        reconciling = null;
      });
  }, rt.ctx.config.heartbeatIntervalMs);
  timer.unref();

  const requireDevice = auth.requireDevice();
  app.get(
    DeviceRoutes.ws,
    {
      websocket: true,
      preHandler: async function requireConnectableDevice(request, reply) {
        await requireDevice.call(this, request, reply);
        refuseStatus(auth.authOf(request).status);
      },
    },
    (socket, request) => {
      // An agent reconnecting while the server shuts down would otherwise hold the shutdown open.
      if (closing) {
        socket.close(WsClose.goingAway, 'server shutting down');
        setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
        return;
      }
      const { deviceId, stateVersion } = auth.authOf(request);
      const log = request.log.child({ component: 'device-ws', deviceId });
      const connection = new DeviceConnection(
        rt,
        deviceId,
        socket,
        log,
        sourceAddress(request),
        stateVersion,
      );
      connections.add(connection);
      socket.on('close', () => connections.delete(connection));
    },
  );
}
