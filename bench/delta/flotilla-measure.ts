/**
 * Flotilla's side: both trees pushed to a real server with the real CLI; a device that holds v1
 * fetches what v2 adds (the ids v2 has and v1 lacks, objects then chunks) through the pack endpoint
 * into an `FsStore` cache, then `materialize`s v2. Both fsync, as the agent does before it switches
 * releases; the OSTree side is run with its fsyncs on too (pull's default, checkout `--fsync=true`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsStore, materialize } from '@flotilla/store';
import { timed } from './exec.js';
import type { FlotillaServer } from './flotilla-server.js';
import { fetchPacks } from './pack-client.js';
import { missingIds, treeIds } from './tree-ids.js';
import type { TreeIds } from './tree-ids.js';

export interface FlotillaFigures {
  /** Response bytes of a device with nothing fetching all of v2. */
  fullBytes: number;
  fullMs: number;
  /** Response bytes of the v1 → v2 update. */
  updateBytes: number;
  updateObjects: number;
  /** Fetch of the update into the cache, then materialize of v2. */
  fetchMs: number;
  applyMs: number;
}

async function pushChecked(server: FlotillaServer, dir: string, app: string, version: string, ids: TreeIds) {
  const out = (await server.push(dir, app, version)) as { release?: { rootObject?: string } };
  if (out.release?.rootObject !== ids.root)
    throw new Error(`the CLI pushed root ${String(out.release?.rootObject)}, the local build is ${ids.root}`);
}

async function fetchInto(server: FlotillaServer, store: FsStore | null, need: ReturnType<typeof missingIds>) {
  const objects = await fetchPacks(
    server.base,
    server.token,
    need.objects,
    store && ((id, b) => store.putObject(id, b)),
  );
  const chunks = await fetchPacks(
    server.base,
    server.token,
    need.chunks,
    store && ((id, b) => store.putChunk(id, b)),
  );
  return objects + chunks;
}

export async function measureFlotilla(
  server: FlotillaServer,
  app: string,
  v1Dir: string,
  v2Dir: string,
): Promise<FlotillaFigures> {
  const v1 = await treeIds(v1Dir);
  const v2 = await treeIds(v2Dir);
  await pushChecked(server, v1Dir, app, '1.0.0', v1);
  await pushChecked(server, v2Dir, app, '2.0.0', v2);
  const device = await mkdtemp(join(tmpdir(), 'flt-delta-device-'));
  try {
    const full = await timed(() => fetchInto(server, null, missingIds(v2, null)));
    const store = await FsStore.open({ root: join(device, 'cache') });
    await fetchInto(server, store, missingIds(v1, null));
    await materialize(store, v1.root, join(device, 'v1'));
    const need = missingIds(v2, v1);
    const fetched = await timed(() => fetchInto(server, store, need));
    const applied = await timed(() => materialize(store, v2.root, join(device, 'v2')));
    return {
      fullBytes: full.value,
      fullMs: full.ms,
      updateBytes: fetched.value,
      updateObjects: need.objects.length + need.chunks.length,
      fetchMs: fetched.ms,
      applyMs: applied.ms,
    };
  } finally {
    await rm(device, { recursive: true, force: true });
  }
}
