/** One executor per step kind (balena-supervisor style); each is safe to run again after a crash. */
import { readdir, rename, stat } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';
import { materialize, parseObject } from '@flotilla/store';
import type { MaterializeStats } from '@flotilla/store';
import type { ReleaseSpec, Step } from '../model/release.js';
import type { Runtime } from '../runtimes/runtime.js';
import type { ApplyContext } from './context.js';
import { fsyncDir, ioError, removeStaleLinks, removeTree, switchSymlink } from '../util/fs-ops.js';
import { EarlyStaging, durableAtCommit, stageIntoTemp } from './staging.js';
import { FetchArrivals, TreeReads, cacheTreeFiles } from './tree-files.js';

type StepOf<K extends Step['kind']> = Extract<Step, { kind: K }>;
export interface StepResult {
  wireBytes: number;
  /** A fetch step with `overlapStage`: the staging it began, for the stage step to finish. */
  staging?: Promise<MaterializeStats>;
}
type Executor<K extends Step['kind']> = (
  step: StepOf<K>,
  ctx: ApplyContext,
  signal: AbortSignal,
  /** The staging the previous (fetch) step began, handed over by the transaction. */
  begun: Promise<MaterializeStats> | undefined,
) => Promise<StepResult>;

const NOTHING: StepResult = { wireBytes: 0 };
/** What a stage that fails this way recovers from: scrub the cache, fetch again, retry once. */
const CORRUPTION = new Set(['FLT_HASH_MISMATCH', 'FLT_CHUNK_ENCODING_INVALID', 'FLT_OBJECT_MISSING']);

const executors: { [K in Step['kind']]: Executor<K> } = {
  async fetch(step, ctx, signal) {
    const { release } = step;
    // Staging begins as soon as the tree is known (staging.ts), unless the release is staged already.
    const early =
      !step.overlapStage || (await exists(ctx.layout.releaseDir(release.app, release.root)))
        ? null
        : new EarlyStaging(ctx, release);
    // The runtime learns at once which release is coming (docker: the engine's load is opened).
    expectAhead(ctx, release);
    // The runtime may begin what `start` needs (docker: loading the images) as soon as the tree's
    // objects are in the cache, reading the files' chunks as the fetch stores them (tree-files.ts).
    const arrivals = new FetchArrivals(ctx.cache);
    const reads = new TreeReads();
    let preparing: Promise<void> | undefined;
    const onTreeReady = (): void => {
      early?.start();
      preparing ??= prepareAhead(ctx, release, signal, arrivals, reads);
    };
    try {
      const outcome = await ctx.fetchRelease(release, signal, false, onTreeReady);
      arrivals.end();
      await settlePrepare(preparing ?? prepareAhead(ctx, release, signal, arrivals, reads));
      // The changed files are written once the runtime's reads of them are over (TreeReads).
      const staging = early?.fetched(reads.over(STAGE_HOLD_MS));
      return staging ? { ...outcome, staging } : outcome;
    } catch (error) {
      arrivals.end(error);
      await early?.failed(error);
      throw error;
    }
  },

  async stage(step, ctx, signal, begun) {
    const { app, root } = step.release;
    const final = ctx.layout.releaseDir(app, root);
    if (await exists(final)) {
      await begun?.catch(() => undefined);
      return NOTHING;
    }
    const releases = ctx.layout.releasesDir(app);
    const temp = `${final}.tmp`;
    let wireBytes = 0;
    let durable = !durableAtCommit(step.release);
    let stamps: MaterializeStats['stamps'];
    try {
      const stats = await (begun ?? stageIntoTemp(ctx, step.release));
      stamps = stats.stamps;
    } catch (error) {
      // The cache removes a corrupt item when it reads one. Read the whole release once to find
      // (and remove) every other, fetch them again with no shortcut through installed subtrees, retry once.
      if (!(error instanceof FlotillaError && CORRUPTION.has(error.code))) throw asDiskError(error);
      ctx.logger.warn(
        { err: error },
        'corrupt item in the chunk cache; scrubbing the release and fetching again',
      );
      await removeTree(temp);
      await scrub(ctx, root);
      wireBytes = (await ctx.fetchRelease(step.release, signal, true)).wireBytes;
      // No reuse on the retry: the corrupt item may be what a reused file was checked against.
      await materialize(ctx.cache, root, temp, { durability: 'filesystem' }).catch((e: unknown) => {
        throw asDiskError(e);
      });
      durable = true;
      stamps = undefined;
      // The disk corrupts data: verify installed files by content from now on, not by stamp.
      ctx.stamps.forgetAllBut(app, []);
    }
    try {
      await rename(temp, final);
      // Deferred, the rename is made durable with the tree (the commit's sync covers it).
      if (durable) await fsyncDir(releases);
    } catch (e) {
      throw ioError('cannot rename into place', final, e);
    }
    // A stamp vouches for content on disk: saved once the tree is durable.
    const saveStamps = (): void => {
      if (stamps !== undefined) ctx.stamps.save(app, root, stamps);
    };
    if (durable) saveStamps();
    else ctx.durable.defer(final, saveStamps);
    return { wireBytes };
  },

  async stop(step, ctx) {
    const appDir = ctx.layout.appDir(step.release.app);
    await ctx.runtimeFor(step.release).stop(step.release.app, appDir);
    return NOTHING;
  },

  async switch(step, ctx) {
    if (step.release === null) {
      return NOTHING; // a failed first install: `current` is removed by the rollback step
    }
    const link = ctx.layout.currentLink(step.release.app);
    try {
      await removeStaleLinks(link);
      await switchSymlink(link, `releases/${step.release.root}`);
    } catch (e) {
      throw ioError('cannot switch', link, e);
    }
    return NOTHING;
  },

  async start(step, ctx, signal) {
    await ctx.runtimeFor(step.release).start(ctx.layout.context(step.release), signal);
    return NOTHING;
  },

  async health(step, ctx, signal) {
    await ctx.runtimeFor(step.release).health(ctx.layout.context(step.release), signal);
    return NOTHING;
  },

  async commit(step, ctx) {
    // A tree staged without a sync (staging.ts durableAtCommit) is durable before it is committed.
    if (durableAtCommit(step.release))
      await ctx.durable.settle(ctx.layout.releaseDir(step.release.app, step.release.root));
    ctx.records.commit(step.release.app, step.release, step.replaced, ctx.keepPrevious);
    return NOTHING;
  },

  async rollback(step, ctx) {
    const app = step.failed.app;
    if (step.release === null) {
      // A failed first install: nothing of the app runs any more.
      await ctx.runtimeFor(step.failed).settle?.(app, null);
      const link = ctx.layout.currentLink(app);
      await switchSymlink(link, null).catch((e: unknown) => {
        throw ioError('cannot remove', link, e);
      });
    }
    ctx.records.rollback(app, step.release, step.failed, step.reason, ctx.keepPrevious);
    return NOTHING;
  },

  async cleanup(step, ctx) {
    const installed = ctx.records.installed(step.app);
    const current = installed.current;
    if (current) await ctx.runtimeFor(current).settle?.(step.app, ctx.layout.context(current));
    // A runtime the app left (e.g. docker → process) removes what it still has of the app.
    for (const runtime of new Set(installed.previous.map((r) => r.runtime)))
      if (runtime !== current?.runtime) {
        const previous = installed.previous.find((r) => r.runtime === runtime) as typeof current & object;
        await ctx.runtimeFor(previous).settle?.(step.app, null);
      }
    const releases = ctx.layout.releasesDir(step.app);
    for (const name of await readdir(releases).catch(() => [] as string[])) {
      if (step.keep.includes(name)) continue;
      await removeTree(`${releases}/${name}`).catch((e: unknown) =>
        ctx.logger.warn({ err: e, name }, 'could not remove an old release directory'),
      );
    }
    ctx.stamps.forgetAllBut(step.app, step.keep);
    if (!(await ctx.cache.overCap())) return NOTHING;
    const evicted = await ctx.cache.evict(await ctx.protectedIds());
    if (evicted.removed > 0) ctx.logger.info(evicted, 'chunk cache trimmed to its size cap');
    return NOTHING;
  },
};

/** Runs one step; `begun` is the staging a fetch step just before it began (its StepResult). */
export function executeStep(
  step: Step,
  ctx: ApplyContext,
  signal: AbortSignal,
  begun?: Promise<MaterializeStats>,
): Promise<StepResult> {
  const run = executors[step.kind] as Executor<Step['kind']>;
  return run(step, ctx, signal, begun);
}

/** How long the fetch step waits for a runtime's `prepare` to be under way. */
const PREPARE_WAIT_MS = 5_000;
/** How long staging holds its rewrite of changed files for the runtime's reads of them, at most. */
const STAGE_HOLD_MS = 3_000;

/**
 * `Runtime.prepare` with the release's files read from the cache (tree-files.ts) as the fetch
 * brings them (`arrivals`), unchanged chunks of a file from the installed release's file at the
 * same path; never rejects (a failure is logged, and `start` does the work from the staged tree).
 */
function prepareAhead(
  ctx: ApplyContext,
  release: ReleaseSpec,
  signal: AbortSignal,
  arrivals: FetchArrivals,
  reads: TreeReads,
): Promise<void> {
  const runtime = runtimeOrNull(ctx, release);
  if (runtime?.prepare === undefined) return Promise.resolve();
  const current = ctx.records.installed(release.app).current;
  const base =
    current && current.root !== release.root
      ? { root: current.root, dir: ctx.layout.releaseDir(current.app, current.root) }
      : null;
  const files = cacheTreeFiles(ctx.cache, release.root, { arrivals, base, reads });
  const context = { ...ctx.layout.context(release), files };
  return runtime
    .prepare(context, signal)
    .catch((error: unknown) =>
      ctx.logger.warn({ err: error, app: release.app }, 'preparing the release ahead of its start failed'),
    );
}

/** The release's runtime; null for one this agent lacks (the start step reports it). */
function runtimeOrNull(ctx: Pick<ApplyContext, 'runtimeFor'>, release: ReleaseSpec): Runtime | null {
  try {
    return ctx.runtimeFor(release);
  } catch {
    return null;
  }
}

/** `Runtime.expect`, in the background: the update of `release` begins (never fails the update). */
export function expectAhead(ctx: Pick<ApplyContext, 'runtimeFor' | 'logger'>, release: ReleaseSpec): void {
  void runtimeOrNull(ctx, release)
    ?.expect?.(release)
    .catch((error: unknown) =>
      ctx.logger.warn({ err: error, app: release.app }, 'expecting the release ahead of its fetch failed'),
    );
}

/** Waits for a `prepareAhead` to be under way, at most PREPARE_WAIT_MS (an engine that does not answer delays the update no more). */
async function settlePrepare(started: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([started, new Promise<void>((r) => (timer = setTimeout(r, PREPARE_WAIT_MS)))]);
  clearTimeout(timer);
}

/** Reads every object and chunk of a tree; the cache removes each corrupt one it meets. */
async function scrub(ctx: ApplyContext, id: string): Promise<void> {
  let object;
  try {
    object = parseObject(await ctx.cache.getObject(id), { expectedId: id });
  } catch {
    return; // missing or corrupt (now removed): the full fetch brings it
  }
  if (object.type === 'file') {
    for (const c of object.chunks) await ctx.cache.getChunk(c.id).catch(() => undefined);
  } else {
    for (const e of object.entries) if (e.hash !== undefined) await scrub(ctx, e.hash);
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

function asDiskError(error: unknown): unknown {
  if (error instanceof FlotillaError && error.code === 'FLT_IO') {
    const cause = error.cause as NodeJS.ErrnoException | undefined;
    if (cause?.code === 'ENOSPC')
      return ioError('cannot write', String((error.details as { path?: string })?.path), cause);
  }
  return error;
}
