/**
 * The one place where failures become HTTP answers: every error leaves as
 * `{ "error": { "code", "message", "details" } }` with a stable code (docs/api-auth.md "Errors").
 */
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { FlotillaError, MAX_JSON_DEPTH, isFlotillaError, jsonDepthExceeds } from '@flotilla/protocol';
import type { ErrorCode } from '@flotilla/protocol';
import { retryAfterSecondsOf } from './rate-limits.js';
import { isDiskFull } from '../db/errors.js';

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

const BY_FASTIFY_CODE: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'FLT_BAD_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'FLT_BAD_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'FLT_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'FLT_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'FLT_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_TYPE: 'FLT_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'FLT_BAD_REQUEST',
  FST_ERR_BAD_URL: 'FLT_BAD_REQUEST',
  FST_ERR_NOT_FOUND: 'FLT_ROUTE_NOT_FOUND',
};

const BY_STATUS: Record<number, ErrorCode> = {
  404: 'FLT_NOT_FOUND',
  405: 'FLT_METHOD_NOT_ALLOWED',
  413: 'FLT_BODY_TOO_LARGE',
  415: 'FLT_UNSUPPORTED_MEDIA_TYPE',
  429: 'FLT_RATE_LIMITED',
  431: 'FLT_HEADERS_TOO_LARGE',
  503: 'FLT_UNAVAILABLE',
};

const DISK_FULL_MESSAGE =
  "the server's storage is full, so the request was not completed; an operator must free space (it recovers without a restart)";

/** Converts anything thrown in a request into a FlotillaError; unknown errors become FLT_INTERNAL. */
export function toFlotillaError(error: unknown): FlotillaError {
  // Before anything else: a store or database error wrapped as FLT_IO names server paths.
  if (isDiskFull(error) && !(isFlotillaError(error) && error.code === 'FLT_DISK_FULL'))
    return new FlotillaError('FLT_DISK_FULL', DISK_FULL_MESSAGE, { cause: error });
  if (isFlotillaError(error)) return error;
  const e = error as Partial<FastifyError> & { validation?: ValidationIssue[]; validationContext?: string };
  if (Array.isArray(e.validation)) {
    const problems = e.validation.map((issue) => describeIssue(e.validationContext ?? 'request', issue));
    return new FlotillaError(
      'FLT_VALIDATION',
      `invalid ${e.validationContext ?? 'request'}: ${problems.join('; ')}`,
      {
        details: { problems },
      },
    );
  }
  const byCode = typeof e.code === 'string' ? BY_FASTIFY_CODE[e.code] : undefined;
  if (byCode) return new FlotillaError(byCode, messageFor(byCode, e.message));
  // secure-json-parse rejects __proto__ / constructor.prototype keys with a 400 SyntaxError.
  if (error instanceof SyntaxError && e.statusCode === 400)
    return new FlotillaError('FLT_BAD_JSON', error.message);
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    return new FlotillaError(
      BY_STATUS[status] ?? 'FLT_BAD_REQUEST',
      e.message ?? STATUS_CODES[status] ?? 'bad request',
    );
  }
  if (status === 503) return new FlotillaError('FLT_UNAVAILABLE', 'the service is temporarily unavailable');
  return new FlotillaError('FLT_INTERNAL', 'internal error', { cause: error });
}

function messageFor(code: ErrorCode, original: string | undefined): string {
  switch (code) {
    case 'FLT_BAD_JSON':
      return `the request body is not valid JSON${original ? ` (${original})` : ''}`;
    case 'FLT_BODY_TOO_LARGE':
      return 'the request body is larger than the server accepts';
    case 'FLT_UNSUPPORTED_MEDIA_TYPE':
      return 'unsupported Content-Type (send application/json)';
    default:
      return original ?? code;
  }
}

function describeIssue(part: string, issue: ValidationIssue): string {
  const where = `${part}${(issue.instancePath ?? '').replace(/\//g, '.')}`;
  const params = issue.params ?? {};
  if (issue.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    return `${where}: unknown field "${params.additionalProperty}"`;
  }
  if (issue.keyword === 'required' && typeof params.missingProperty === 'string') {
    return `${where}: missing required field "${params.missingProperty}"`;
  }
  return `${where}: ${issue.message ?? 'is invalid'}`;
}

/** Installs the error handler, the unknown-route handler and the JSON body parser. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const flt = toFlotillaError(error);
    if (flt.code === 'FLT_INTERNAL') request.log.error({ err: error }, 'request failed');
    else if (flt.code === 'FLT_DISK_FULL') request.log.error({ err: error }, 'request failed: storage full');
    else request.log.debug({ code: flt.code }, flt.message);
    const retryAfter = retryAfterSecondsOf(flt);
    if (retryAfter !== null) void reply.header('retry-after', String(retryAfter));
    return reply.status(flt.statusCode).type('application/json; charset=utf-8').send(flt.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    const flt = new FlotillaError(
      'FLT_ROUTE_NOT_FOUND',
      `no route ${request.method} ${request.url.split('?')[0]}`,
    );
    return reply.status(flt.statusCode).send(flt.toJSON());
  });
  // Only JSON bodies are accepted (text/plain would otherwise reach handlers as a string); an empty
  // body is "no body", so that a bodyless DELETE may still carry Content-Type: application/json.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') {
      done(null, undefined);
      return;
    }
    // Before parsing: what walks a parsed body (schemas, JSON.stringify, canonical JSON) recurses.
    if (jsonDepthExceeds(text)) {
      done(tooDeep('the request body'), undefined);
      return;
    }
    void parseJson(request, text, done);
  });
}

/** FLT_JSON_TOO_DEEP for `what` (e.g. "the request body"). */
export function tooDeep(what: string): FlotillaError {
  return new FlotillaError(
    'FLT_JSON_TOO_DEEP',
    `${what} nests arrays and objects more than ${MAX_JSON_DEPTH} deep`,
    { details: { maxDepth: MAX_JSON_DEPTH } },
  );
}

/**
 * Node answers malformed requests (oversized headers, broken HTTP) itself, before Fastify sees
 * them; this writes the same JSON envelope on the socket and closes only that connection.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const flt = tooLarge
    ? new FlotillaError('FLT_HEADERS_TOO_LARGE', 'the request headers are larger than the server accepts')
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new FlotillaError(
          'FLT_REQUEST_TIMEOUT',
          'the request headers did not arrive in time (headersTimeoutMs)',
        )
      : new FlotillaError('FLT_BAD_REQUEST', 'malformed HTTP request');
  if (!flt || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(flt.toJSON());
  socket.end(
    `HTTP/1.1 ${flt.statusCode} ${STATUS_CODES[flt.statusCode] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
