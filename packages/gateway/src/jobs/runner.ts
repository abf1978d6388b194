/**
 * One import job, run by whichever worker holds it: claim, import into a private work directory
 * (bounded by the pull timeout), move the squashfs into the content-addressed cache, deliver it to
 * the platform, then publish in one transaction. A worker killed at any step has published
 * nothing; the job's next holder starts over (layer blobs already in the cache are not pulled again).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { FlotillaError } from '@flotilla/protocol';
import type { GatewayConfig } from '../config/config.js';
import { ConversionCache } from '../convert/reuse.js';
import { deliveredName, deliveryFor } from '../platforms/delivery.js';
import { fleetVersion, requireFleetHost } from '../platforms/fleet.js';
import type { FleetHost } from '../platforms/fleet.js';
import type { ImageImporter } from './importer.js';
import { parseImageRef } from './refs.js';
import type { ImageStore } from './store.js';
import type { GatewayAudit } from './tables.js';

export interface JobRunnerDeps {
  store: ImageStore;
  config: GatewayConfig;
  importer: ImageImporter;
  audit: GatewayAudit;
  log: Logger;
  /** This worker's name in job rows and audit entries. */
  workerId: string;
  /** The server's side of `fleet` platforms; only in the server's own process. */
  fleet?: FleetHost;
}

export type JobOutcome = 'done' | 'finished-elsewhere' | 'lost';

/** Phases' share of a job's progress. */
const PULL_SHARE = 0.6;
const CONVERT_SHARE = 0.3;

export function cachedImagePath(config: GatewayConfig, contentId: string): string {
  return join(config.cacheDir, 'images', deliveredName(contentId));
}

/** The conversion cache (convert/reuse.ts) beside the image cache, entries named by content id. */
export function conversionCacheOf(config: GatewayConfig): ConversionCache {
  return new ConversionCache(join(config.cacheDir, 'incremental'), (id) => cachedImagePath(config, id));
}

/**
 * Runs job `id`. Throws on a failed attempt after recording it (`final`: the job fails for good);
 * the caller's queue retries with backoff.
 */
export async function runJob(deps: JobRunnerDeps, id: string, final: boolean): Promise<JobOutcome> {
  const { store, config, log, workerId } = deps;
  const job = await store.claim(id, workerId);
  if (job === null) return 'finished-elsewhere';
  const jobLog = log.child({ job: id, image: job.image, platform: job.platform, attempt: job.attempts });
  const workDir = join(config.cacheDir, 'work', `${id}-${job.attempts}`);
  const moved = new AbortController();
  const timeout = AbortSignal.timeout(config.pullTimeoutMs);
  const signal = AbortSignal.any([timeout, moved.signal]);
  const reporter = new ProgressReporter(store, id, workerId, () => moved.abort());
  try {
    const platform = config.platforms[job.platform];
    if (platform === undefined)
      throw new FlotillaError(
        'FLT_IMAGE_PLATFORM_UNKNOWN',
        `platform ${job.platform} is not configured here`,
      );
    const ref = parseImageRef(config, job.image);
    const fleet = platform.access.type === 'fleet' ? requireFleetHost(deps.fleet, platform.name) : undefined;
    await clearEarlierAttempts(join(config.cacheDir, 'work'), id);
    await mkdir(workDir, { recursive: true });
    jobLog.info('import started');
    const result = await deps.importer.import({
      location: ref.location,
      repository: ref.repository,
      tag: ref.tag,
      arch: job.arch,
      platform,
      workDir,
      blobCacheDir: join(config.cacheDir, 'registry'),
      ...(fleet && { sink: fleet.objects }),
      conversionCache: conversionCacheOf(config),
      signal,
      onProgress: (phase, fraction) =>
        void reporter.report(
          phase,
          phase === 'pulling' ? PULL_SHARE * fraction : PULL_SHARE + CONVERT_SHARE * fraction,
        ),
    });
    signal.throwIfAborted();
    const contentId = result.squashfsSha256 ?? (await sha256File(result.squashfsPath));
    const cached = cachedImagePath(config, contentId);
    await mkdir(join(config.cacheDir, 'images'), { recursive: true });
    // Same content, same name: a file already there (from another job or platform) is identical.
    await rename(result.squashfsPath, cached);
    const sizeBytes = (await stat(cached)).size;
    if (result.index) {
      // Advisory: without it the next version of the image is converted from scratch.
      await conversionCacheOf(config)
        .remember(contentId, result.index, workDir)
        .catch((err: unknown) => jobLog.warn({ err }, 'could not record the conversion for reuse'));
    }
    await reporter.report('delivering', PULL_SHARE + CONVERT_SHARE);
    let path: string;
    if (platform.access.type === 'fleet' && fleet) {
      if (result.treeRoot === undefined)
        throw new FlotillaError(
          'FLT_CONVERT_FAILED',
          'the conversion built no release tree for a fleet platform',
        );
      // The objects are in the server's store; a release, the gateway role's signature and a
      // deployment make them reach the platform's agents (an identical retry changes nothing).
      const published = await fleet.publish({
        app: platform.access.app,
        version: fleetVersion(ref.tag, result.treeRoot),
        rootObject: result.treeRoot,
        filter: platform.access.filter,
        actor: { userId: job.requested_by, username: job.requested_by },
      });
      jobLog.info(published, 'image released to the fleet platform');
      path = published.targetPath;
    } else {
      path = await deliveryFor(platform).deliver(cached, deliveredName(contentId), signal);
    }
    signal.throwIfAborted();
    const published = await store.complete(
      id,
      workerId,
      { contentId, manifestDigest: result.manifestDigest, path, sizeBytes },
      deps.audit,
    );
    if (!published) {
      jobLog.warn('the job moved to another worker before it was published here; nothing published');
      return 'lost';
    }
    jobLog.info({ id: contentId, path, reusedFrom: result.reusedFrom ?? null }, 'image ready');
    return 'done';
  } catch (e) {
    if (moved.signal.aborted) {
      jobLog.warn('the job moved to another worker; abandoned here');
      return 'lost';
    }
    const error = timeout.aborted
      ? new FlotillaError(
          'FLT_IMAGE_PULL_TIMEOUT',
          `the import took longer than the pull timeout (${config.pullTimeoutMs} ms)`,
          {
            cause: e,
          },
        )
      : e;
    const message = error instanceof Error ? error.message : String(error);
    jobLog.warn({ err: error, final }, 'import attempt failed');
    await store.fail(id, workerId, message, final, deps.audit);
    throw error;
  } finally {
    await reporter.flush();
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Writes progress to the job row, at most one write in flight (the latest value wins). */
class ProgressReporter {
  private pending: { phase: string; progress: number } | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: ImageStore,
    private readonly id: string,
    private readonly worker: string,
    private readonly onMoved: () => void,
  ) {}

  report(phase: string, progress: number): Promise<void> {
    this.pending = { phase, progress };
    this.running ??= this.drain();
    return this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending !== null) {
        const { phase, progress } = this.pending;
        this.pending = null;
        if (!(await this.store.progress(this.id, this.worker, phase, progress))) this.onMoved();
      }
    } catch {
      // Progress is advisory: a failed write loses one update, the job goes on.
    } finally {
      this.running = null;
    }
  }

  async flush(): Promise<void> {
    await this.running?.catch(() => undefined);
  }
}

/**
 * Removes the work directories of this job's earlier attempts (a killed worker's leftovers). A
 * holder that was only slow loses its files, fails, and cannot record it: the job is not its own.
 */
async function clearEarlierAttempts(workRoot: string, id: string): Promise<void> {
  const names = await readdir(workRoot).catch(() => [] as string[]);
  for (const name of names) {
    if (name.startsWith(`${id}-`)) await rm(join(workRoot, name), { recursive: true, force: true });
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
