/**
 * The two object endpoints a push uses: which ids the server lacks (JSON) and the pack upload
 * (a binary body, through the same bounded client with the token the push was given).
 */
import {
  FlotillaError,
  MissingObjectsResponse,
  ObjectRoutes,
  PACK_CODEC_HEADER,
  PACK_CONTENT_TYPE,
  UploadResponse,
} from '@flotilla/protocol';
import type { PackCodec } from '@flotilla/protocol';
import type { ApiClient } from '../api/client.js';
import { DEFAULT_TIMEOUT_MS } from '../api/client.js';

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
      const res = await client.http.request({
        method: 'POST',
        path: ObjectRoutes.upload,
        schema: UploadResponse,
        raw: { bytes: pack, contentType: PACK_CONTENT_TYPE },
        headers: { [PACK_CODEC_HEADER]: codec },
        token,
        timeoutMs: UPLOAD_TIMEOUT_MS,
      });
      if (res.body === null) throw new FlotillaError('FLT_NETWORK', 'the upload was answered without a body');
      return res.body;
    },
  };
}
