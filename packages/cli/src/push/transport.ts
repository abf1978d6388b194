/**
 * The two object endpoints a push uses: which ids the server lacks (JSON) and the pack upload
 * (binary body, so it goes through fetch directly with the same token the ApiClient uses).
 */
import {
  errorFromEnvelope,
  FlotillaError,
  MissingObjectsResponse,
  ObjectRoutes,
  PACK_CODEC_HEADER,
  PACK_CONTENT_TYPE,
  UploadResponse,
} from '@flotilla/protocol';
import type { PackCodec } from '@flotilla/protocol';
import type { ApiClient } from '../api/client.js';
import { checkBody, DEFAULT_TIMEOUT_MS } from '../api/client.js';

export interface ObjectTransport {
  /** The subset of `ids` the server does not have. */
  missing(ids: readonly string[]): Promise<string[]>;
  /** Uploads one compressed pack. */
  upload(pack: Buffer, codec: PackCodec): Promise<UploadResponse>;
}

// An upload of a full batch over a slow link takes longer than a JSON request.
const UPLOAD_TIMEOUT_MS = 10 * DEFAULT_TIMEOUT_MS;

export function httpTransport(client: ApiClient, token: string): ObjectTransport {
  return {
    async missing(ids) {
      const res = await client.request('POST', ObjectRoutes.missing, MissingObjectsResponse, {
        body: { ids },
      });
      const asked = new Set(ids);
      const stray = res.missing.find((id) => !asked.has(id));
      if (stray !== undefined)
        throw new FlotillaError(
          'FLT_NETWORK',
          `the server reported an object it was not asked about: ${stray}`,
        );
      return res.missing;
    },
    async upload(pack, codec) {
      const url = `${client.baseUrl}${ObjectRoutes.upload}`;
      let res: Response;
      let text: string;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: {
            accept: 'application/json',
            authorization: `Bearer ${token}`,
            'content-type': PACK_CONTENT_TYPE,
            [PACK_CODEC_HEADER]: codec,
          },
          body: pack,
          signal: AbortSignal.timeout(UPLOAD_TIMEOUT_MS),
          redirect: 'error',
        });
        text = await res.text();
      } catch (cause) {
        throw new FlotillaError('FLT_NETWORK', `upload to ${url} failed: ${(cause as Error).message}`, {
          cause,
        });
      }
      const body = parseJson(text);
      if (!res.ok) throw errorFromEnvelope(res.status, body ?? text, res.headers.get('retry-after'));
      return checkBody(UploadResponse, body, `POST ${ObjectRoutes.upload}`);
    },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
