/**
 * GET of one object's frame into a partial file, resumable with Range. Uses node:http rather than
 * fetch so that every byte that reached the agent is on disk when a connection is cut (a WHATWG
 * stream drops its queued chunks when it errors).
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { FlotillaError } from '@flotilla/protocol';
import type { TokenBucket } from './token-bucket.js';

export interface ObjectGetOptions {
  url: string;
  headers: Record<string, string>;
  /** Bytes already in `partial`; asked for with Range when > 0. */
  have: number;
  partial: string;
  limitBytes: number;
  timeoutMs: number;
  bucket: TokenBucket;
  signal?: AbortSignal;
  onWireBytes?: (bytes: number) => void;
}

/** Resolves when the whole frame is in `partial`; throws FLT_NETWORK (retryable) or a final error. */
export function getObjectFrame(options: ObjectGetOptions): Promise<void> {
  const url = new URL(options.url);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers = { ...options.headers, ...(options.have > 0 ? { range: `bytes=${options.have}-` } : {}) };
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'GET', headers, timeout: options.timeoutMs, signal: options.signal },
      (res) => {
        handle(res, options).then(resolve, reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (cause) =>
      reject(new FlotillaError('FLT_NETWORK', `GET ${options.url} failed: ${cause.message}`, { cause })),
    );
    req.end();
  });
}

async function handle(res: IncomingMessage, options: ObjectGetOptions): Promise<void> {
  const status = res.statusCode ?? 0;
  if (status === 416) {
    res.resume();
    throw new FlotillaError('FLT_NETWORK', `GET ${options.url}: range not satisfiable; restarting`, {
      details: { restart: true },
    });
  }
  if (status !== 200 && status !== 206) {
    res.resume();
    const code =
      status === 404
        ? 'FLT_OBJECT_MISSING'
        : status >= 500 || status === 429
          ? 'FLT_NETWORK'
          : 'FLT_BAD_REQUEST';
    throw new FlotillaError(code, `GET ${options.url}: HTTP ${status}`, { details: { status } });
  }
  const append = status === 206;
  const fd = openSync(options.partial, append ? 'a' : 'w');
  let size = append ? options.have : 0;
  try {
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      const fail = (error: FlotillaError) => {
        if (failed) return;
        failed = true;
        res.destroy();
        reject(error);
      };
      res.on('data', (piece: Buffer) => {
        if (failed) return;
        size += piece.length;
        if (size > options.limitBytes) {
          return fail(
            new FlotillaError(
              'FLT_LIMIT_EXCEEDED',
              `GET ${options.url}: more than ${options.limitBytes} bytes`,
            ),
          );
        }
        writeSync(fd, piece);
        options.onWireBytes?.(piece.length);
        res.pause();
        options.bucket.take(piece.length, options.signal).then(
          () => res.resume(),
          () => res.resume(),
        );
      });
      res.on('end', () => (res.complete ? resolve() : fail(cut(options.url, size))));
      res.on('error', () => fail(cut(options.url, size)));
      res.on('aborted', () => fail(cut(options.url, size)));
    });
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function cut(url: string, bytes: number): FlotillaError {
  return new FlotillaError('FLT_NETWORK', `GET ${url}: the transfer broke off at ${bytes} bytes`, {
    details: { bytes },
  });
}
