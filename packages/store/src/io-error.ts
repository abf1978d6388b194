import { FlotillaError } from '@flotilla/protocol';

/** A file system error (anything with an errno `code`) as FLT_IO naming the path; others unchanged. */
export function asIoError(error: unknown, path: string): unknown {
  if (error instanceof FlotillaError || !(error instanceof Error)) return error;
  const errno = (error as NodeJS.ErrnoException).code;
  if (typeof errno !== 'string') return error;
  return new FlotillaError('FLT_IO', `${path}: ${error.message}`, { details: { path, errno }, cause: error });
}
