/**
 * A device's director targets read as a TUF client reaches them: timestamp, the snapshot it names,
 * then the targets the snapshot names. `get` reads one metadata file of the device's director
 * repository (by inject or over HTTP, asserting its status).
 */
import { parseMetadata } from '@flotilla/node-kit';
import type { Metadata, Targets } from '@tufjs/models';

export type MetadataGet = (file: string) => Promise<Uint8Array>;

export async function readDirectorTargets(get: MetadataGet): Promise<Metadata<Targets>> {
  const timestamp = parseMetadata('timestamp', await get('timestamp.json'));
  const snapshot = parseMetadata(
    'snapshot',
    await get(`${timestamp.signed.snapshotMeta.version}.snapshot.json`),
  );
  const version = snapshot.signed.meta['targets.json']!.version;
  return parseMetadata('targets', await get(`${version}.targets.json`));
}

/** The target paths the director names for the device, sorted. */
export async function directorTargetPaths(get: MetadataGet): Promise<string[]> {
  return Object.keys((await readDirectorTargets(get)).signed.targets).sort();
}
