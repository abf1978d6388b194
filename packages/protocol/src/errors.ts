/**
 * One error type for the whole project (docs/api-auth.md "Errors"): a stable `code` that is never
 * reused, an HTTP status, a human message and optional details. The API returns
 * `{ "error": { "code", "message", "details" } }`. Callers branch on `code`, never on the message.
 */

/** Every error code Flotilla emits, with its HTTP status. Codes are never renamed or reused. */
export const ErrorCodes = {
  // generic request problems
  FLT_BAD_JSON: 400,
  FLT_JSON_TOO_DEEP: 400,
  FLT_VALIDATION: 400,
  FLT_BAD_REQUEST: 400,
  FLT_UNSUPPORTED_MEDIA_TYPE: 415,
  FLT_BODY_TOO_LARGE: 413,
  FLT_HEADERS_TOO_LARGE: 431,
  FLT_NOT_FOUND: 404,
  FLT_ROUTE_NOT_FOUND: 404,
  FLT_METHOD_NOT_ALLOWED: 405,
  FLT_CONFLICT: 409,
  FLT_RATE_LIMITED: 429,
  FLT_REQUEST_TIMEOUT: 408,
  FLT_INTERNAL: 500,
  FLT_UNAVAILABLE: 503,
  /** The server's own storage (data directory or database) is full; the request was not completed. */
  FLT_DISK_FULL: 507,
  // operator authentication / authorization
  FLT_UNAUTHENTICATED: 401,
  FLT_BAD_CREDENTIALS: 401,
  FLT_TOKEN_INVALID: 401,
  FLT_TOKEN_EXPIRED: 401,
  FLT_FORBIDDEN: 403,
  FLT_CSRF: 403,
  // registration keys and enrollment
  FLT_REGKEY_INVALID: 401,
  FLT_REGKEY_REVOKED: 403,
  FLT_REGKEY_EXPIRED: 403,
  FLT_REGKEY_EXHAUSTED: 403,
  FLT_NONCE_INVALID: 401,
  FLT_SIGNATURE_INVALID: 401,
  FLT_PUBLIC_KEY_INVALID: 400,
  // device lifecycle
  FLT_DEVICE_NOT_FOUND: 404,
  FLT_DEVICE_PENDING: 403,
  FLT_DEVICE_REJECTED: 403,
  FLT_DEVICE_REVOKED: 403,
  FLT_DEVICE_STATE_CONFLICT: 409,
  // filters
  FLT_FILTER_INVALID: 400,
  FLT_SORT_INVALID: 400,
  // configuration (process start, not HTTP)
  FLT_CONFIG_INVALID: 500,
  FLT_IO: 500,
  FLT_NETWORK: 502,
  // database (process start)
  FLT_DB_SCHEMA_TOO_NEW: 500,
  FLT_DB_MIGRATION_FAILED: 500,
  // another server or agent process holds the data directory (its pid is in the details)
  FLT_DATA_DIR_LOCKED: 409,
  // content-addressed store: objects, trees, chunks (packages/store)
  FLT_MANIFEST_INVALID: 400,
  FLT_PATH_UNSAFE: 400,
  FLT_MODE_UNSAFE: 400,
  FLT_FILE_TYPE_UNSUPPORTED: 400,
  FLT_HASH_MISMATCH: 422,
  FLT_LIMIT_EXCEEDED: 413,
  FLT_OBJECT_MISSING: 404,
  FLT_CHUNK_ENCODING_INVALID: 400,
  FLT_TARGET_EXISTS: 409,
  // TUF trust layer: image repository, director, offline keys, agent verification (docs/security.md)
  FLT_TUF_SIGNATURE: 422,
  FLT_TUF_ROLLBACK: 409,
  FLT_TUF_FREEZE: 422,
  FLT_TUF_MIX_AND_MATCH: 422,
  FLT_TUF_LENGTH: 422,
  FLT_TUF_HASH: 422,
  FLT_TUF_TARGET_MISMATCH: 422,
  FLT_TUF_TARGET_MISSING: 404,
  FLT_TUF_METADATA_INVALID: 400,
  FLT_TUF_FETCH: 502,
  FLT_TUF_NOT_INITIALIZED: 409,
  FLT_TUF_KEY_MISMATCH: 422,
  FLT_TUF_NOT_DELEGATED: 409,
  FLT_KEY_FILE_INVALID: 400,
  FLT_KEY_FILE_UNSAFE_MODE: 400,
  FLT_KEY_PASSPHRASE_WRONG: 401,
  FLT_KEY_PASSPHRASE_REQUIRED: 401,
  // agent updates: fetch, apply transaction, runtimes (docs/updates.md)
  FLT_DISK_SPACE: 507,
  FLT_HEALTH_CHECK_FAILED: 503,
  FLT_RUNTIME_FAILED: 500,
  FLT_RUNTIME_UNSUPPORTED: 400,
  // docker runtime: an image the release names is not on the engine and could not be loaded
  FLT_IMAGE_MISSING: 409,
  // docker runtime: the Docker Engine does not answer (dockerd stopped, socket missing)
  FLT_ENGINE_UNAVAILABLE: 503,
  FLT_NO_PREVIOUS_RELEASE: 409,
  FLT_APP_NOT_INSTALLED: 404,
  // the reason of a rollback an operator asked for (reported as `rolled-back`, never thrown to a client)
  FLT_ROLLED_BACK_BY_OPERATOR: 409,
  // objects, releases, deployments (docs/releases.md)
  FLT_PACK_INVALID: 400,
  FLT_DELTA_INVALID: 422,
  FLT_RELEASE_OBJECTS_MISSING: 409,
  FLT_RELEASE_UNSIGNED: 409,
  FLT_RELEASE_IN_USE: 409,
  FLT_DEVICE_OFFLINE: 409,
  // `deploy status --watch`: the release failed or was rolled back on some devices
  FLT_DEPLOY_FAILED: 409,
  FLT_REPORT_STALE: 409,
  // staged rollouts (docs/rollouts.md)
  FLT_ROLLOUT_NOT_FOUND: 404,
  FLT_ROLLOUT_STATE_CONFLICT: 409,
  FLT_ROLLOUT_EMPTY: 409,
  FLT_WAVES_INVALID: 400,
  FLT_WINDOW_INVALID: 400,
  // replies a device owes the server over its control channel (device app logs)
  FLT_DEVICE_TIMEOUT: 504,
  // remote access streams: a tunnel to a host port the agent's tunnelHostPorts does not allow,
  // a stream the peer broke the framing or flow control of, too many open streams (docs/remote-access.md)
  FLT_PORT_NOT_ALLOWED: 403,
  FLT_STREAM_PROTOCOL: 400,
  FLT_STREAM_LIMIT: 429,
  // secrets in runtime config (docs/security.md "Secrets in runtime config")
  FLT_SECRET_MISMATCH: 422,
  FLT_SECRET_SEALED_INVALID: 422,
  FLT_SECRET_MISSING: 409,
  // image gateway: registries (docs/gateway.md "Registries and authentication")
  FLT_IMAGE_REF_INVALID: 400,
  FLT_REGISTRY_UNREACHABLE: 502,
  FLT_REGISTRY_TIMEOUT: 504,
  FLT_REGISTRY_AUTH_FAILED: 502,
  FLT_REGISTRY_IMAGE_NOT_FOUND: 404,
  FLT_REGISTRY_PLATFORM_MISSING: 404,
  FLT_REGISTRY_MANIFEST_INVALID: 502,
  FLT_REGISTRY_DIGEST_MISMATCH: 502,
  FLT_REGISTRY_ERROR: 502,
  // image gateway: conversion (docs/gateway.md "Conversion")
  FLT_LAYER_INVALID: 422,
  FLT_LAYER_UNSAFE: 422,
  FLT_CONVERT_FAILED: 500,
  // image gateway jobs, platforms and delivery (docs/gateway.md)
  FLT_IMAGE_NOT_FOUND: 404,
  FLT_IMAGE_PLATFORM_UNKNOWN: 400,
  FLT_IMAGE_LOCATION_UNKNOWN: 400,
  FLT_IMAGE_PULL_TIMEOUT: 504,
  FLT_IMAGE_IMPORT_FAILED: 502,
  FLT_IMAGE_DELIVERY_FAILED: 502,
  FLT_IMAGE_JOB_NOT_FOUND: 404,
  FLT_GATEWAY_CONFIG_INVALID: 400,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface ErrorBody {
  /** An ErrorCode from this version, or one a newer peer sent. */
  code: string;
  message: string;
  details?: unknown;
}

/** The JSON envelope of every error response. */
export interface ErrorEnvelope {
  error: ErrorBody;
}

export class FlotillaError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly details: unknown;
  /** How long the server asked the client to wait before retrying (`Retry-After`), or null. */
  readonly retryAfterMs: number | null;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; cause?: unknown; retryAfterMs?: number | null } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FlotillaError';
    this.code = code;
    this.statusCode = ErrorCodes[code];
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs ?? null;
  }

  toJSON(): ErrorEnvelope {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.details !== undefined) body.details = this.details;
    return { error: body };
  }
}

export function isFlotillaError(e: unknown): e is FlotillaError {
  return e instanceof FlotillaError;
}

/** A failure as it is reported over the wire: a stable code and a message. */
export interface ErrorSummary {
  code: ErrorCode;
  message: string;
}

/**
 * The `{ code, message }` of anything thrown: a FlotillaError keeps its code, anything else is
 * FLT_INTERNAL with its text. The message is cut to `maxMessageChars` (default 2048, what reports
 * and acks carry).
 */
export function errorSummary(error: unknown, maxMessageChars = 2048): ErrorSummary {
  if (isFlotillaError(error)) return { code: error.code, message: error.message.slice(0, maxMessageChars) };
  const text = error instanceof Error ? error.message : String(error);
  return { code: 'FLT_INTERNAL', message: text.slice(0, maxMessageChars) };
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(ErrorCodes, code);
}

/**
 * Parses an error envelope received over HTTP back into a FlotillaError (clients: agent, CLI).
 * `retryAfter` is the response's `Retry-After` header, if any (see `parseRetryAfter`).
 */
export function errorFromEnvelope(
  status: number,
  body: unknown,
  retryAfter?: string | null,
  nowMs: number = Date.now(),
): FlotillaError {
  const retryAfterMs = parseRetryAfter(retryAfter, nowMs);
  if (body && typeof body === 'object' && 'error' in body) {
    const err = body.error;
    if (err && typeof err === 'object') {
      const { code, message, details } = err as Record<string, unknown>;
      if (isErrorCode(code) && typeof message === 'string') {
        return new FlotillaError(code, message, { details, retryAfterMs });
      }
    }
  }
  const code: ErrorCode =
    status === 429
      ? 'FLT_RATE_LIMITED'
      : status === 503
        ? 'FLT_UNAVAILABLE'
        : status >= 500
          ? 'FLT_INTERNAL'
          : status === 404
            ? 'FLT_NOT_FOUND'
            : 'FLT_BAD_REQUEST';
  const wait = retryAfterMs === null ? '' : ` (retry in ${Math.ceil(retryAfterMs / 1000)} s)`;
  return new FlotillaError(code, `HTTP ${status}${wait}`, { details: body, retryAfterMs });
}

/**
 * A `Retry-After` header (RFC 9110 §10.2.3: delay-seconds or an HTTP date) as milliseconds from
 * `nowMs`; null when absent or unreadable.
 */
export function parseRetryAfter(
  header: string | null | undefined,
  nowMs: number = Date.now(),
): number | null {
  if (header === null || header === undefined) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** The wait (ms) a server asked for with this error (429/503 `Retry-After`), or null. */
export function retryAfterMsOf(error: unknown): number | null {
  return isFlotillaError(error) ? error.retryAfterMs : null;
}
