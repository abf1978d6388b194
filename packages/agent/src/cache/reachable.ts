/** What a set of release roots keeps alive in the cache: the walk eviction protects. */
import type { TreeObject } from '@flotilla/store';

export interface ReachableSource {
  /** Whether the cache holds `id` (object or chunk). */
  holds: (id: string) => Promise<boolean>;
  /** The object `id`, verified; throws for a chunk or a corrupt item. */
  objectOf: (id: string) => Promise<TreeObject>;
}

/** Every object and chunk id reachable from `roots` that the cache holds (what it lacks is left out). */
export async function reachableIds(roots: Iterable<string>, source: ReachableSource): Promise<Set<string>> {
  const seen = new Set<string>();
  const visited = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const id = stack.pop() as string;
    if (visited.has(id)) continue;
    visited.add(id);
    if (!(await source.holds(id))) continue;
    seen.add(id);
    let object;
    try {
      object = await source.objectOf(id);
    } catch {
      continue; // a chunk (not an object) or a corrupt item: nothing below it
    }
    if (object.type === 'file') for (const c of object.chunks) seen.add(c.id);
    else for (const e of object.entries) if (e.hash !== undefined) stack.push(e.hash);
  }
  return seen;
}
