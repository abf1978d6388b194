/**
 * Tree closures for the tree-pack route (protocol `ObjectRoutes.treePack`): for a root object id,
 * every tree object (directory and file objects, not chunks) reachable from it, with each
 * directory's child ids so that subtrees can be walked without reading anything. Ids are content
 * hashes, so a closure never goes stale; devices ask for the same few releases over and over, so
 * closures are kept in a bounded LRU and a request becomes a walk over sets already in memory.
 * Building a closure reads only the objects no cached closure already describes (a new release
 * shares most of its directories with the previous one).
 */
import { FlotillaError, isFlotillaError } from '@flotilla/protocol';
import { mapBounded, parseObject } from '@flotilla/store';
import type { TreePackMetrics } from './metrics.js';
import type { ObjectStore } from './store.js';
import { WeightedLru } from '@flotilla/node-kit';

/** Object id → its child object ids (a directory), or null (a file object). */
export type Closure = ReadonlyMap<string, readonly string[] | null>;

export interface TreeClosuresOptions {
  store: ObjectStore;
  metrics: TreePackMetrics;
  /** Most tree objects held over all cached closures (default 500,000: about 65 MB of heap). */
  maxObjects?: number;
  /** Most closures held (default 64). */
  maxRoots?: number;
  /** Objects read at once while a closure is built (default 16). */
  readConcurrency?: number;
}

export class TreeClosures {
  private readonly cache: WeightedLru<string, Closure>;
  private readonly building = new Map<string, Promise<Closure | null>>();

  constructor(private readonly opts: TreeClosuresOptions) {
    this.cache = new WeightedLru({
      weigh: (closure) => closure.size,
      maxWeight: opts.maxObjects ?? 500_000,
      maxEntries: opts.maxRoots ?? 64,
    });
  }

  /**
   * The closure of `root`, or null when `root` is not stored. FLT_OBJECT_MISSING when an object
   * under it is not stored; FLT_VALIDATION when `root` is not a tree object (a chunk).
   */
  async get(root: string): Promise<Closure | null> {
    const cached = this.cache.get(root);
    if (cached) {
      this.opts.metrics.closureLookups.inc({ result: 'hit' });
      return cached;
    }
    const pending = this.building.get(root);
    if (pending) {
      this.opts.metrics.closureLookups.inc({ result: 'shared' });
      return pending;
    }
    this.opts.metrics.closureLookups.inc({ result: 'miss' });
    const build = this.build(root).finally(() => this.building.delete(root));
    this.building.set(root, build);
    const closure = await build;
    if (closure && !this.cache.has(root)) {
      this.cache.set(root, closure);
      this.opts.metrics.cachedObjects.set(this.cache.weight);
    }
    return closure;
  }

  /** Drops the closure of `root` (its objects turned out not to be all stored any more). */
  forget(root: string): void {
    this.cache.delete(root);
    this.opts.metrics.cachedObjects.set(this.cache.weight);
  }

  /** Closures held and the tree objects they count, for tests and diagnostics. */
  stats(): { roots: number; objects: number } {
    return { roots: this.cache.size, objects: this.cache.weight };
  }

  /** A directory's children as some cached closure knows them (content ids: any closure will do). */
  private known(id: string, hint: { closure: Closure | null }): readonly string[] | null | undefined {
    const first = hint.closure?.get(id);
    if (first !== undefined) return first;
    for (const closure of this.cache.values()) {
      const children = closure.get(id);
      if (children !== undefined) {
        hint.closure = closure;
        return children;
      }
    }
    return undefined;
  }

  private async build(root: string): Promise<Closure | null> {
    const nodes = new Map<string, readonly string[] | null>();
    const hint: { closure: Closure | null } = { closure: null };
    const limit = this.opts.readConcurrency ?? 16;
    const cached = this.known(root, hint);
    const rootChildren = cached === undefined ? await this.read(root, true) : cached;
    if (rootChildren === undefined) return null;
    nodes.set(root, rootChildren);
    let frontier = rootChildren ? [...rootChildren] : [];
    while (frontier.length > 0) {
      const next: string[] = [];
      const toRead: string[] = [];
      for (const id of frontier) {
        if (nodes.has(id)) continue;
        const known = this.known(id, hint);
        if (known === undefined) {
          nodes.set(id, null); // claimed, so it is read once; set to its children below
          toRead.push(id);
        } else {
          nodes.set(id, known);
          if (known) next.push(...known);
        }
      }
      const read = await mapBounded(toRead, limit, async (id) => (await this.read(id, false)) ?? null);
      toRead.forEach((id, i) => {
        nodes.set(id, read[i]!);
        if (read[i]) next.push(...read[i]);
      });
      frontier = next;
    }
    return nodes;
  }

  /** Child ids of one stored object (null: a file object); undefined: the root is not stored. */
  private async read(id: string, isRoot: boolean): Promise<readonly string[] | null | undefined> {
    let bytes: Uint8Array;
    try {
      bytes = await this.opts.store.getObject(id);
    } catch (error) {
      if (!isFlotillaError(error) || error.code !== 'FLT_OBJECT_MISSING') throw error;
      if (isRoot) return undefined;
      throw new FlotillaError('FLT_OBJECT_MISSING', `object ${id} of the tree is not stored`, {
        details: { missing: [id] },
      });
    }
    let object;
    try {
      object = parseObject(bytes);
    } catch (error) {
      throw new FlotillaError(
        'FLT_VALIDATION',
        isRoot ? `${id} is not a tree object` : `object ${id} of the tree is not a tree object`,
        { details: { notTree: [id] }, cause: error },
      );
    }
    if (object.type === 'file') return null;
    const children: string[] = [];
    for (const entry of object.entries) if (entry.hash !== undefined) children.push(entry.hash);
    return children;
  }
}

/**
 * The ids to send for `root` minus the closures of `have`, directories before what they name
 * (depth first, each id once). A whole subtree is skipped when its directory is in a have closure.
 */
export function treePackIds(root: string, closure: Closure, have: readonly Closure[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    if (have.some((h) => h.has(id))) continue;
    out.push(id);
    const children = closure.get(id);
    if (children) for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return out;
}
