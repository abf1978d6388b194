/** `flotilla tunnel ID PORT --local LPORT`: TCP connections to a device port, carried by the server. */
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import { DEVICE_TUNNEL_ROUTE, FlotillaError } from '@flotilla/protocol';
import type { ApiClient } from '../../api/client.js';
import { contextFor } from '../../context.js';
import { examples } from '../../help.js';
import type { CliIo } from '../../io.js';
import { checkAppName } from '../../push/release-ref.js';
import { resolveDeviceId } from '../devices/resolve-id.js';
import { openOperatorSocket, readOperatorSocket, sendData, sendEof } from './streams.js';

export function portArg(value: string): number {
  const n = /^\d{1,5}$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new InvalidArgumentError('must be a port from 1 to 65535');
  return n;
}

function localPortArg(value: string): number {
  const n = /^\d{1,5}$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= 0 && n <= 65535))
    throw new InvalidArgumentError('must be a port from 0 (any free port) to 65535');
  return n;
}

interface TunnelTarget {
  deviceId: string;
  port: number;
  app?: string;
  service?: string;
}

/** Carries one accepted local connection over its own operator WebSocket (one device stream). */
export async function carryConnection(client: ApiClient, target: TunnelTarget, local: Socket): Promise<void> {
  local.pause();
  const query = new URLSearchParams({ port: String(target.port) });
  if (target.app !== undefined) query.set('app', target.app);
  if (target.service !== undefined) query.set('service', target.service);
  const ws = await openOperatorSocket(client, DEVICE_TUNNEL_ROUTE, target.deviceId, query);
  const ended = readOperatorSocket(ws, {
    onData: (chunk) =>
      new Promise<void>((resolve) => {
        if (local.destroyed) return resolve();
        if (local.write(chunk)) resolve();
        else local.once('drain', () => resolve());
      }),
    onEof: () => local.end(),
  });
  forwardLocal(
    local,
    (chunk) => sendChunks(ws, chunk),
    () => sendEof(ws),
  );
  local.on('close', () => ws.close(1000));
  local.on('error', () => ws.close(1000));
  local.resume();
  const end = await ended;
  if (end.error) local.destroy();
  else local.end();
  if (end.error) throw end.error;
}

/**
 * Passes what `local` reads to `send`, reading no faster than `send` takes it, then calls `eof`
 * once the peer half-closed and every chunk before it was sent. A paused socket may still emit
 * 'end' while the last chunk is being sent (when the half-close is read right after that chunk),
 * so the end waits for the send in flight: sent at once, it overtook the chunk's last pieces and
 * the device never got them.
 */
export function forwardLocal(local: Socket, send: (chunk: Buffer) => Promise<void>, eof: () => void): void {
  let sending: Promise<void> = Promise.resolve();
  local.on('data', (chunk: Buffer) => {
    local.pause();
    sending = send(chunk);
    void sending.then(() => local.resume());
  });
  local.on('end', () => void sending.then(eof));
}

async function sendChunks(ws: Parameters<typeof sendData>[0], chunk: Buffer): Promise<void> {
  for (let at = 0; at < chunk.length; at += 32 * 1024) await sendData(ws, chunk.subarray(at, at + 32 * 1024));
}

export function registerTunnelCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('tunnel')
    .description(
      'forward 127.0.0.1:LPORT to a TCP port on a device (or of an app service on it) over its control connection (admin)',
    )
    .argument('<id>', 'device id, or the unique prefix `devices ls` prints')
    .argument('<port>', 'the port on the device (or in the service)', portArg)
    .requiredOption(
      '--local <port>',
      'the local port to listen on (127.0.0.1; 0 picks a free one)',
      localPortArg,
    )
    .option(
      '--app <name>',
      "the app whose service to reach (without: the device itself, if its agent's tunnelHostPorts allows the port)",
    )
    .option('--service <name>', 'the service of the app (docker apps)')
    .action(
      async (
        id: string,
        port: number,
        opts: { local: number; app?: string; service?: string },
        command: Command,
      ) => {
        const ctx = contextFor(io, command);
        if (opts.service !== undefined && opts.app === undefined)
          throw new FlotillaError('FLT_VALIDATION', '--service needs --app');
        const app = opts.app === undefined ? undefined : checkAppName(opts.app);
        const client = await ctx.client();
        const deviceId = await resolveDeviceId(client, id);
        const target: TunnelTarget = {
          deviceId,
          port,
          ...(app !== undefined && { app }),
          ...(opts.service !== undefined && { service: opts.service }),
        };
        const open = new Set<Socket>();
        const server = createServer({ allowHalfOpen: true }, (local) => {
          open.add(local);
          local.on('close', () => open.delete(local));
          carryConnection(client, target, local).catch((e: unknown) => {
            local.destroy();
            const code = e instanceof FlotillaError ? e.code : 'FLT_NETWORK';
            io.stderr.write(
              `tunnel connection failed [${code}]: ${e instanceof Error ? e.message : String(e)}\n`,
            );
          });
        });
        await new Promise<void>((resolve, reject) => {
          server.once('error', (e) =>
            reject(new FlotillaError('FLT_IO', `cannot listen on 127.0.0.1:${opts.local}: ${e.message}`)),
          );
          server.listen(opts.local, '127.0.0.1', () => resolve());
        });
        const address = server.address();
        const localPort = typeof address === 'object' && address ? address.port : opts.local;
        ctx.out.result(
          {
            deviceId,
            port,
            local: { host: '127.0.0.1', port: localPort },
            app: app ?? null,
            service: opts.service ?? null,
          },
          () =>
            ctx.out.note(
              `forwarding 127.0.0.1:${localPort} → ${app === undefined ? 'device' : `${app}${opts.service ? `/${opts.service}` : ''}`} port ${port} on ${deviceId}; Ctrl-C stops`,
            ),
        );
        await new Promise<void>((resolve) => {
          const stop = () => {
            io.signals.off('SIGINT', stop);
            io.signals.off('SIGTERM', stop);
            server.close(() => resolve());
            for (const local of open) local.destroy();
          };
          io.signals.on('SIGINT', stop);
          io.signals.on('SIGTERM', stop);
        });
      },
    );
  examples(cmd, [
    'flotilla tunnel 3f2a9c0d1e4b 22 --local 2222     # then: ssh -p 2222 user@127.0.0.1',
    'flotilla tunnel 3f2a9c0d1e4b 8080 --local 8080 --app shop --service web',
    'flotilla tunnel 3f2a9c0d1e4b 5432 --local 0 --app db --json   # prints the port it listens on',
  ]);
}
