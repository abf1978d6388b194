/**
 * Downloads bytes whose length and SHA-256 are known from verified metadata (a release's root object,
 * then every object and chunk below it), refusing to read one byte past the declared length (endless
 * data attack) and refusing bytes that do not hash as declared. Nothing is returned unverified.
 */
import { createHash } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import type { FetchOptions } from './fetcher.js';

export interface ExpectedBytes {
  /** Exact length in bytes. */
  length: number;
  /** SHA-256, lowercase hex. */
  sha256: string;
}

/** GETs `url` and returns its bytes only if they are exactly `expected.length` long and hash to `expected.sha256`. */
export async function downloadVerified(
  url: string,
  expected: ExpectedBytes,
  opts: FetchOptions = {},
): Promise<Buffer> {
  if (
    !Number.isSafeInteger(expected.length) ||
    expected.length < 0 ||
    !/^[0-9a-f]{64}$/.test(expected.sha256)
  ) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      'expected length must be a non-negative integer and sha256 64 hex digits',
    );
  }
  const controller = new AbortController();
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 30_000);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { ...opts.headers?.() },
      signal: AbortSignal.any([controller.signal, timeout]),
      redirect: 'error',
    });
  } catch (cause) {
    throw new FlotillaError('FLT_TUF_FETCH', `GET ${url} failed`, { cause, details: { url } });
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new FlotillaError('FLT_TUF_FETCH', `GET ${url}: HTTP ${response.status}`, {
      details: { url, status: response.status },
    });
  }
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > expected.length) {
    controller.abort();
    throw new FlotillaError(
      'FLT_TUF_LENGTH',
      `GET ${url}: the server announces ${declared} bytes, ${expected.length} are expected`,
      {
        details: { url, expected: expected.length, announced: declared },
      },
    );
  }
  const hash = createHash('sha256');
  const parts: Buffer[] = [];
  let received = 0;
  try {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      received += chunk.length;
      if (received > expected.length) {
        controller.abort();
        throw new FlotillaError(
          'FLT_TUF_LENGTH',
          `GET ${url}: more than the ${expected.length} bytes expected`,
          { details: { url, expected: expected.length } },
        );
      }
      hash.update(chunk);
      parts.push(Buffer.from(chunk));
    }
  } catch (cause) {
    if (cause instanceof FlotillaError) throw cause;
    throw new FlotillaError('FLT_TUF_FETCH', `GET ${url}: the download broke off`, {
      cause,
      details: { url },
    });
  }
  if (received !== expected.length) {
    throw new FlotillaError(
      'FLT_TUF_LENGTH',
      `GET ${url}: ${received} bytes received, ${expected.length} expected`,
      { details: { url, expected: expected.length, received } },
    );
  }
  const actual = hash.digest('hex');
  if (actual !== expected.sha256) {
    throw new FlotillaError(
      'FLT_TUF_HASH',
      `GET ${url}: content hashes to ${actual}, ${expected.sha256} expected`,
      { details: { url, expected: expected.sha256, actual } },
    );
  }
  return Buffer.concat(parts);
}
