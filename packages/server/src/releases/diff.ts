/** What changed between two releases of an app, and what a device on the older one must fetch. */
import type { ReleaseDiff } from '@flotilla/protocol';
import { diffTrees } from '@flotilla/store';
import type { ReleaseServices } from './service.js';
import { getRelease } from './service.js';

export async function diffReleases(
  svc: Pick<ReleaseServices, 'ctx' | 'store'>,
  app: string,
  fromVersion: string,
  toVersion: string,
): Promise<ReleaseDiff> {
  const from = await getRelease(svc.ctx.db, app, fromVersion);
  const to = await getRelease(svc.ctx.db, app, toVersion);
  const diff = await diffTrees(svc.store, from.rootObject, to.rootObject);
  let fetchBytes = 0;
  const fetch = [...diff.objects, ...diff.chunks];
  for (const id of fetch) fetchBytes += (await svc.store.size(id)) ?? 0;
  return {
    app,
    from: fromVersion,
    to: toVersion,
    added: diff.added.map((c) => ({ path: c.path, size: c.size ?? 0 })),
    removed: diff.removed.map((c) => ({ path: c.path, size: c.size ?? 0 })),
    modified: diff.modified.map((m) => ({ path: m.path, oldSize: m.oldSize ?? 0, newSize: m.newSize ?? 0 })),
    fetchObjects: fetch.length,
    fetchBytes,
  };
}
