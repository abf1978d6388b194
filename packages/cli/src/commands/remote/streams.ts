/**
 * The CLI's side of remote-access streams (docs/remote-access.md): an operator WebSocket for exec
 * and tunnels (binary `channel | bytes`, JSON events), and the newline-delimited JSON log stream.
 */
import {
  FlotillaError,
  OperatorChannel,
  OperatorStreamEvent,
  errorFromEnvelope,
  routePath,
} from '@flotilla/protocol';
import { Value } from '@sinclair/typebox/value';
import WebSocket from 'ws';
import type { ApiClient } from '../../api/client.js';

/** Opens the operator WebSocket at `route` (with `{ id }`) and `query`; rejects with the server's refusal. */
export function openOperatorSocket(
  client: ApiClient,
  route: string,
  id: string,
  query: URLSearchParams,
): Promise<WebSocket> {
  const url = `${client.baseUrl.replace(/^http/, 'ws')}${routePath(route, { id })}?${query.toString()}`;
  const token = client.token;
  const ws = new WebSocket(url, {
    ...(token !== undefined && { headers: { authorization: `Bearer ${token}` } }),
    maxPayload: 1024 * 1024,
    followRedirects: false,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let body: unknown = null;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = null;
        }
        reject(errorFromEnvelope(res.statusCode ?? 0, body, res.headers['retry-after']));
        ws.terminate();
      });
    });
    ws.once('error', (err) =>
      reject(new FlotillaError('FLT_NETWORK', `cannot open a stream to ${client.baseUrl}: ${err.message}`)),
    );
  });
}

export interface StreamHandlers {
  onData(chunk: Buffer, channel: 'out' | 'err'): Promise<void> | void;
  onEof?(): void;
  onOpened?(): void;
}

/** How an operator stream ended. */
export interface StreamEnd {
  exitCode: number | null;
  error: FlotillaError | null;
}

/**
 * Reads the operator socket until it closes. Data is passed on before the next message is read
 * (the socket pauses while `onData` is busy), so a slow consumer slows the device down.
 */
export function readOperatorSocket(ws: WebSocket, handlers: StreamHandlers): Promise<StreamEnd> {
  let exitCode: number | null = null;
  let error: FlotillaError | null = null;
  return new Promise((resolve) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const channel = data[0] === OperatorChannel.stderr ? 'err' : 'out';
        const busy = handlers.onData(data.subarray(1), channel);
        if (busy) {
          ws.pause();
          void busy.then(() => ws.resume());
        }
        return;
      }
      let event: unknown = null;
      try {
        event = JSON.parse(data.toString('utf8'));
      } catch {
        event = null;
      }
      if (!Value.Check(OperatorStreamEvent, event)) return;
      if (event.type === 'opened') handlers.onOpened?.();
      else if (event.type === 'eof') handlers.onEof?.();
      else if (event.type === 'exit') exitCode = event.exitCode;
      else error = new FlotillaError(errorCodeOf(event.code), event.message);
    });
    ws.on('close', (code, reason) => {
      ws.terminate();
      if (error === null && exitCode === null && code !== 1000)
        error = new FlotillaError(
          'FLT_NETWORK',
          `the stream was cut (${code} ${reason.toString('utf8')})`.trim(),
        );
      resolve({ exitCode, error });
    });
    ws.on('error', () => undefined);
  });
}

function errorCodeOf(code: string): ConstructorParameters<typeof FlotillaError>[0] {
  return /^FLT_[A-Z_]+$/.test(code)
    ? (code as ConstructorParameters<typeof FlotillaError>[0])
    : 'FLT_NETWORK';
}

/** Sends bytes as a data message; resolves when written to the connection. */
export function sendData(ws: WebSocket, chunk: Buffer): Promise<void> {
  const message = Buffer.allocUnsafe(chunk.length + 1);
  message[0] = OperatorChannel.data;
  chunk.copy(message, 1);
  return new Promise((resolve) => {
    if (ws.readyState !== WebSocket.OPEN) return resolve();
    ws.send(message, () => resolve());
  });
}

/** Sends `bytes` in pieces the server accepts (32 KiB each). */
export async function sendAll(ws: WebSocket, bytes: Buffer): Promise<void> {
  for (let at = 0; at < bytes.length; at += 32 * 1024) await sendData(ws, bytes.subarray(at, at + 32 * 1024));
}

export function sendEof(ws: WebSocket): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'eof' }));
}
