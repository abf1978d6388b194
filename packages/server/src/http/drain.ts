/**
 * Shutdown never waits on keep-alive. Fastify answers requests that arrive while it closes with
 * 503 and `Connection: close`, and Node closes the connections idle when the close begins; but a
 * request already in flight then was answered with keep-alive, and its connection stayed open,
 * idle, for the keep-alive timeout (72 s) unless the client happened to send another request on
 * it. An agent backing off after the server went away does not, so `flotilla server` ran into its
 * 15 s forced exit. From the moment the close begins, each answer ends its connection.
 */
import { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

export function closeConnectionsOnClose(app: FastifyInstance): void {
  let closing = false;
  // Registered before any route plugin, so it runs first among the preClose hooks.
  app.addHook('preClose', (done) => {
    closing = true;
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
