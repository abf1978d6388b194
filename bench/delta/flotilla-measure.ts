/**
 * Flotilla's side: both trees pushed to a real server with the real CLI; devices are the agent's own
 * update engine (flotilla-device.ts). Full: a device with nothing installs v2. Update: a device that
 * runs v1 installs v2: the first such device makes the server compute the deltas (cold), a second
 * finds them in the server's delta cache (warm, as after `flotilla release delta` or a deploy, which
 * prepares them); `reps` such warm devices run and the one with the median update time is reported.
 * The engine fsyncs as it does in production (one syncfs for the cache, one for the
 * staged release); the OSTree side runs with its fsyncs on (pull's default, checkout `--fsync=true`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { medianBy } from './exec.js';
import { BenchDevice } from './flotilla-device.js';
import type { FlotillaServer } from './flotilla-server.js';
import { treeIds } from './tree-ids.js';
import type { TreeIds } from './tree-ids.js';

export interface FlotillaFigures {
  /** Response bytes of a device with nothing installing v2. */
  fullBytes: number;
  fullMs: number;
  /** Response bytes of the v1 → v2 update (warm; the cold run's bytes are the same, checked). */
  updateBytes: number;
  /** Warm update (the median of the runs): assignment to staging, staging to commit. */
  fetchMs: number;
  applyMs: number;
  /** The first device's whole update, deltas computed on demand by the server. */
  coldMs: number;
}

async function pushChecked(server: FlotillaServer, dir: string, app: string, version: string, ids: TreeIds) {
  const out = (await server.push(dir, app, version)) as { release?: { rootObject?: string } };
  if (out.release?.rootObject !== ids.root)
    throw new Error(`the CLI pushed root ${String(out.release?.rootObject)}, the local build is ${ids.root}`);
}

async function withDevice<T>(
  work: string,
  name: string,
  server: FlotillaServer,
  use: (d: BenchDevice) => Promise<T>,
): Promise<T> {
  const device = await BenchDevice.open(join(work, name), server);
  try {
    return await use(device);
  } finally {
    await device.remove();
  }
}

export async function measureFlotilla(
  server: FlotillaServer,
  app: string,
  v1Dir: string,
  v2Dir: string,
  reps: number,
): Promise<FlotillaFigures> {
  const v1 = await treeIds(v1Dir);
  const v2 = await treeIds(v2Dir);
  await pushChecked(server, v1Dir, app, '1.0.0', v1);
  await pushChecked(server, v2Dir, app, '2.0.0', v2);
  const work = await mkdtemp(join(tmpdir(), 'flt-delta-device-'));
  try {
    const full = await withDevice(work, 'full', server, (d) => d.install(app, '2.0.0', v2.root));
    const update = async (name: string) =>
      withDevice(work, name, server, async (d) => {
        await d.install(app, '1.0.0', v1.root);
        return d.install(app, '2.0.0', v2.root);
      });
    const cold = await update('cold');
    const warms = [];
    for (let i = 0; i < reps; i++) warms.push(await update(`warm-${i}`));
    const warm = medianBy(warms, (w) => w.fetchMs + w.applyMs);
    for (const w of warms)
      if (w.wireBytes !== cold.wireBytes)
        console.error(`  note: cold update moved ${cold.wireBytes} bytes, a warm one ${w.wireBytes}`);
    console.error(`  flotilla updates: ${warms.map((w) => w.fetchMs + w.applyMs).join(', ')} ms`);
    return {
      fullBytes: full.wireBytes,
      fullMs: full.totalMs,
      updateBytes: warm.wireBytes,
      fetchMs: warm.fetchMs,
      applyMs: warm.applyMs,
      coldMs: cold.totalMs,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
