/**
 * Staging: materializing a release into `releases/<id>.tmp` (the stage step renames it into
 * place). Unchanged files are taken from the app's installed releases, and files rebuilt from
 * deltas from the cache's whole files, instead of being written out of chunks; the tree is made
 * durable by one syncfs (docs/updates.md "Staging").
 *
 * Staging may begin before the download ends (a fetch step with `overlapStage`, see EarlyStaging):
 * once the tree's objects are in the cache, its directories are created and its unchanged files
 * linked while the changed files are still arriving; the rest waits for them. This happens in the
 * fetch step, into the same temporary directory, which nothing else reads: a crash there leaves
 * only a `.tmp` that the next staging removes, as a crash in the stage step does. The fetch step's
 * result carries the staging begun; the transaction hands it to the stage step.

 */
import { mkdir } from 'node:fs/promises';
import { StampIndex, materialize } from '@flotilla/store';
import type { FileStamp, MaterializeOptions, MaterializeStats } from '@flotilla/store';
import type { ReleaseSpec } from '../model/release.js';
import type { ApplyContext } from './context.js';
import { ioError, removeTree } from '../util/fs-ops.js';

/**
 * Whether staging leaves `release`'s tree to be made durable by the commit (durable.ts) rather than
 * before the switch: a docker release, whose runtime uses nothing of the tree unverified (each image
 * layer is hashed against the signed config's diff ids while docker loads it, and the engine checks
 * them again), so a tree torn by a power loss before its sync fails its start and the update rolls
 * back, as any failed start does. The sync of the rebuilt layers then runs at the commit, once the
 * new containers serve, instead of before them (docs/containers.md "Image delivery").
 */
export function durableAtCommit(release: ReleaseSpec): boolean {
  return release.runtime === 'docker';
}

function stageOptions(ctx: ApplyContext, release: ReleaseSpec): MaterializeOptions {
  const durability = durableAtCommit(release) ? 'none' : 'filesystem';
  if (ctx.stageReuse === 'off') return { durability };
  const wholeFiles = (id: string) => ctx.cache.wholeFilePath(id);
  const installed = ctx.records.installed(release.app);
  const reuse = [installed.current, ...installed.previous]
    .filter((r): r is ReleaseSpec => r !== null && r.root !== release.root)
    .map((r) => ({ root: r.root, dir: ctx.layout.releaseDir(r.app, r.root) }));
  const options: MaterializeOptions = {
    durability,
    reuse,
    reuseMode: ctx.stageReuse,
    wholeFiles,
  };
  if (ctx.stageReuse !== 'link' || ctx.stageVerify !== 'stamp') return options;
  const stamps = ctx.stamps.load(
    release.app,
    reuse.map((r) => r.root),
  );
  const trusted = new StampIndex([...stamps, ...ctx.cache.wholeFileStamps()]);
  return { ...options, trusted, recordStamps: true };
}

/**
 * Materializes `release` into its fresh `.tmp` directory (removing one a crash left). With
 * `pending`, files its stamps do not vouch for wait for it (the download still running).
 */
export async function stageIntoTemp(
  ctx: ApplyContext,
  release: ReleaseSpec,
  pending?: Promise<Iterable<FileStamp>>,
): Promise<MaterializeStats> {
  const releases = ctx.layout.releasesDir(release.app);
  const temp = `${ctx.layout.releaseDir(release.app, release.root)}.tmp`;
  await mkdir(releases, { recursive: true }).catch((e: unknown) => {
    throw ioError('cannot create', releases, e);
  });
  await removeTree(temp).catch((e: unknown) => {
    throw ioError('cannot remove', temp, e);
  });
  const options = stageOptions(ctx, release);
  return materialize(ctx.cache, release.root, temp, pending ? { ...options, pending } : options);
}

/** A promise with its settlers. */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // rejected only when the fetch fails; whoever waits sees it
  return { promise, resolve, reject };
}

/**
 * Staging begun by the fetch step, for the stage step to finish: `start` at the moment the tree is
 * known, then `fetched` (which returns the staging to hand over) or `failed` once the download
 * ends. `failed` resolves once the partial `.tmp` is removed.
 */
export class EarlyStaging {
  private readonly contents = deferred<Iterable<FileStamp>>();
  private staging: Promise<MaterializeStats> | undefined;

  constructor(
    private readonly ctx: ApplyContext,
    private readonly release: ReleaseSpec,
  ) {}

  start(): void {
    if (this.staging !== undefined) return;
    this.staging = stageIntoTemp(this.ctx, this.release, this.contents.promise);
    this.staging.catch(() => undefined); // seen by the stage step, or dropped after a failed fetch
  }

  /**
   * The download is complete: staging goes on (once `hold` resolves, if given), and the stage step
   * takes over what this returns.
   */
  fetched(hold?: Promise<void>): Promise<MaterializeStats> | undefined {
    if (this.staging === undefined) return undefined;
    const stamps = this.ctx.cache.wholeFileStamps();
    if (hold === undefined) this.contents.resolve(stamps);
    else void hold.then(() => this.contents.resolve(stamps));
    return this.staging;
  }

  /** The download failed: staging stops and removes what it made. */
  async failed(error: unknown): Promise<void> {
    this.contents.reject(error);
    await this.staging?.catch(() => undefined);
  }
}
