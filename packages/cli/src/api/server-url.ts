import { FlotillaError } from '@flotilla/protocol';

/**
 * Validates a server URL and returns its canonical form (no trailing slash), so that URLs typed
 * differently compare equal. Only http and https; no credentials, query or fragment.
 */
export function normalizeServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `invalid server URL "${text}" (expected e.g. http://127.0.0.1:7070)`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `invalid server URL "${text}": only http and https are supported`,
    );
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new FlotillaError(
      'FLT_VALIDATION',
      `invalid server URL "${text}": no credentials, query or fragment`,
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}
