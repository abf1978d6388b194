/**
 * The file pairs of an update, as the agent asks for deltas (its delta phase): a file of the new
 * release and the file at the same path in the release it runs, when the two differ. A device's
 * delta request is answered only for such pairs between releases it may read (objects/access.ts):
 * anything else is answered "none" at no cost. The pairs of two roots are found by walking both
 * trees side by side, skipping every directory the two share (the work grows with the change, not
 * with the trees), and kept in a bounded LRU (content ids: they never go stale).
 */
import { deltaPairKey, parseDirObject } from '@flotilla/store';
import type { DirObject } from '@flotilla/store';
import type { DeviceScope } from '../objects/access.js';
import type { ObjectStore } from '../objects/store.js';
import { WeightedLru } from '@flotilla/node-kit';

export interface UpdatePairsOptions {
  store: ObjectStore;
  /** Most pairs held over all cached release pairs (default 200,000: about 40 MB). */
  maxPairs?: number;
}

export class UpdatePairs {
  private readonly cache: WeightedLru<string, ReadonlySet<string>>;
  private readonly building = new Map<string, Promise<ReadonlySet<string>>>();

  constructor(private readonly opts: UpdatePairsOptions) {
    this.cache = new WeightedLru({ weigh: (set) => 1 + set.size, maxWeight: opts.maxPairs ?? 200_000 });
  }

  /**
   * The keys (`deltaPairKey`) of `pairs` that are no file pair of an update between two releases of
   * one app that `scope` may read (in either direction: a rollback fetches the older one).
   */
  async outside(
    scope: DeviceScope,
    pairs: readonly { target: string; base: string }[],
  ): Promise<Set<string>> {
    const left = new Set(pairs.filter((p) => p.target !== p.base).map((p) => deltaPairKey(p.target, p.base)));
    const byApp = new Map<string, string[]>();
    for (const r of scope.releases) byApp.set(r.app, [...(byApp.get(r.app) ?? []), r.rootObject]);
    for (const roots of byApp.values())
      for (const from of roots)
        for (const to of roots) {
          if (left.size === 0) return left;
          if (from === to) continue;
          // A tree that cannot be walked (an object collected meanwhile) pairs nothing.
          const found = await this.between(from, to).catch(() => new Set<string>());
          for (const key of found) left.delete(key);
        }
    return left;
  }

  /** The pair keys (target in `to`, base in `from`, same path, different objects) of two roots. */
  between(from: string, to: string): Promise<ReadonlySet<string>> {
    const id = `${from}>${to}`;
    const cached = this.cache.get(id);
    if (cached) return Promise.resolve(cached);
    let pending = this.building.get(id);
    if (!pending) {
      pending = this.walk(from, to)
        .then((set) => {
          this.cache.set(id, set);
          return set;
        })
        .finally(() => this.building.delete(id));
      this.building.set(id, pending);
    }
    return pending;
  }

  private async walk(from: string, to: string): Promise<ReadonlySet<string>> {
    const out = new Set<string>();
    const stack: [string, string][] = [[from, to]];
    while (stack.length > 0) {
      const [oldId, newId] = stack.pop()!;
      if (oldId === newId) continue;
      const [before, after] = await Promise.all([this.dir(oldId), this.dir(newId)]);
      const old = new Map(before.entries.map((e) => [e.name, e]));
      for (const entry of after.entries) {
        const was = old.get(entry.name);
        if (!was || was.kind !== entry.kind || !was.hash || !entry.hash || was.hash === entry.hash) continue;
        if (entry.kind === 'file') out.add(deltaPairKey(entry.hash, was.hash));
        else if (entry.kind === 'dir') stack.push([was.hash, entry.hash]);
      }
    }
    return out;
  }

  private async dir(id: string): Promise<DirObject> {
    return parseDirObject(await this.opts.store.getObject(id), { expectedId: id });
  }
}
