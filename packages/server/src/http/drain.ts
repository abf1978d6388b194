/**
 * Shutdown never waits on keep-alive. Fastify answers requests that arrive while it closes with
 * 503 and `Connection: close`, and Node closes the connections idle when the close begins; but a
 * request already in flight then was answered with keep-alive, and its connection stayed open,
 * idle, for the keep-alive timeout (72 s) unless the client happened to send another request on
 * it. An agent backing off after the server went away does not, so `flotilla server` ran into its
 * 15 s forced exit. From the moment the close begins, each answer ends its connection.
 */
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { FlotillaError } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';

export function closeConnectionsOnClose(app: FastifyInstance): void {
  let closing = false;
  // Registered before any route plugin, so it runs first among the preClose hooks.
  app.addHook('preClose', (done) => {
    closing = true;
    // The WebSocket plugin would route an upgrade arriving now to Fastify's 503 for a closing
    // server, written on a socket Node no longer manages (an upgraded socket leaves the HTTP
    // server's connection handling, and it allows half-open): the agent, told "going away" a moment
    // ago and reconnecting at once, drops it, and the socket stays open, half-closed, holding the
    // close for ever. Refuse upgrades here instead, and end their connections.
    app.server.removeAllListeners('upgrade');
    app.server.on('upgrade', refuseUpgrade);
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (closing && request.raw.httpVersionMajor === 1) reply.header('connection', 'close');
    done(null, payload);
  });
  // An answer whose headers had gone out before the close began (a long download) still said
  // keep-alive: end its connection once it is sent.
  app.addHook('onResponse', (request, _reply, done) => {
    // (`inject()` requests have no real socket.)
    const socket: unknown = request.raw.socket;
    if (closing && request.raw.httpVersionMajor === 1 && socket instanceof Socket) socket.end();
    done();
  });
}

const SHUTTING_DOWN = JSON.stringify(
  new FlotillaError('FLT_UNAVAILABLE', 'the server is shutting down; try again shortly').toJSON(),
);

function refuseUpgrade(_request: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => undefined);
  socket.end(
    'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(SHUTTING_DOWN)}\r\n\r\n${SHUTTING_DOWN}`,
    () => socket.destroy(),
  );
}
