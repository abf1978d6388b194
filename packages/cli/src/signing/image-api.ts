/**
 * The image repository as the CLI sees it: the operator API (`TufRoutes`: online keys, status,
 * root and targets uploads) and the public metadata files devices fetch, from which the current
 * root and targets are read (timestamp → snapshot → `N.targets.json`, as a client walks them).
 */
import type { Metadata, Root, Targets } from '@tufjs/models';
import {
  FlotillaError,
  isFlotillaError,
  routePath,
  TufOnlineKeys,
  TufRoutes,
  TufStatus,
  TufSubmitResponse,
} from '@flotilla/protocol';
import { parseMetadata } from '@flotilla/node-kit';
import { Type } from '@sinclair/typebox';
import type { ApiClient } from '../api/client.js';

export const onlineKeys = (c: ApiClient) => c.request('GET', TufRoutes.onlineKeys, TufOnlineKeys);
export const tufStatus = (c: ApiClient) => c.request('GET', TufRoutes.status, TufStatus);

export const submitRoot = (c: ApiClient, md: Metadata<Root>) =>
  c.request('POST', TufRoutes.root, TufSubmitResponse, { body: md.toJSON() });
export const submitTargets = (c: ApiClient, md: Metadata<Targets>) =>
  c.request('POST', TufRoutes.targets, TufSubmitResponse, { body: md.toJSON() });

// The files are TUF metadata, checked by parseMetadata rather than a TypeBox schema.
const AnyJson = Type.Unknown();

async function imageFile(c: ApiClient, file: string): Promise<Buffer | undefined> {
  try {
    const body = await c.request('GET', routePath(TufRoutes.imageFile, { file }), AnyJson);
    return Buffer.from(JSON.stringify(body));
  } catch (error) {
    if (isFlotillaError(error) && error.code === 'FLT_NOT_FOUND') return undefined;
    throw error;
  }
}

/** The latest image root; FLT_TUF_NOT_INITIALIZED before `flotilla keys init`. */
export async function currentRoot(c: ApiClient): Promise<Metadata<Root>> {
  const bytes = await imageFile(c, 'root.json');
  if (!bytes) {
    throw new FlotillaError(
      'FLT_TUF_NOT_INITIALIZED',
      `${c.baseUrl} has no image root yet: run \`flotilla keys init\` first`,
    );
  }
  return parseMetadata('root', bytes);
}

/** The latest image targets, or undefined before the first release was signed. */
export async function currentTargets(c: ApiClient): Promise<Metadata<Targets> | undefined> {
  const timestampBytes = await imageFile(c, 'timestamp.json');
  if (!timestampBytes) return undefined;
  const timestamp = parseMetadata('timestamp', timestampBytes);
  const snapshotFile = `${timestamp.signed.snapshotMeta.version}.snapshot.json`;
  const snapshot = parseMetadata('snapshot', await requireFile(c, snapshotFile));
  const targetsMeta = snapshot.signed.meta['targets.json'];
  if (!targetsMeta) return undefined;
  return parseMetadata('targets', await requireFile(c, `${targetsMeta.version}.targets.json`));
}

async function requireFile(c: ApiClient, file: string): Promise<Buffer> {
  const bytes = await imageFile(c, file);
  if (!bytes) throw new FlotillaError('FLT_TUF_FETCH', `the server lists ${file} but does not serve it`);
  return bytes;
}
