/** Paths pino replaces wherever they appear in a log line, in every component: no secret is logged. */
export const LOG_REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'registrationKey',
  '*.registrationKey',
  // Secrets in runtime config: request bodies that carry values, and resolved environments.
  'secrets',
  '*.secrets',
  'env',
  '*.env',
];
