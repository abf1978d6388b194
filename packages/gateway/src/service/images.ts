/**
 * The gateway's operations, knowing nothing of HTTP: pull (queue or share an import), list, show,
 * look up (counts as use), remove, follow a job. Access rules in access.ts; every action audited.
 */
import type { FleetHost } from '../platforms/fleet.js';
import type {
  Image,
  ImageJob,
  ImageLookupResponse,
  PullImageRequest,
  PullImageResponse,
} from '@flotilla/protocol';
import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { GatewayConfig, PlatformConfig } from '../config/config.js';
import { removeImage } from '../expiry/sweep.js';
import type { JobQueue } from '../jobs/queue.js';
import { parseImageRef } from '../jobs/refs.js';
import { subjectOf, toImage, toImageJob } from '../jobs/store.js';
import type { ImageStore } from '../jobs/store.js';
import type { Clock, GatewayAudit, GatewayImagesTable } from '../jobs/tables.js';
import { administers, mayPull, maySee } from './access.js';
import type { Operator } from './access.js';

export interface Caller extends Operator {
  sourceIp: string | null;
}

export interface ImageSelector {
  platform?: string | undefined;
  image: string;
  arch?: string | undefined;
}

export class GatewayService {
  constructor(
    readonly config: GatewayConfig,
    readonly store: ImageStore,
    private readonly queue: JobQueue,
    private readonly audit: GatewayAudit,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly fleet?: FleetHost,
  ) {}

  private platform(name: string | undefined): PlatformConfig {
    const key = name ?? this.config.defaultPlatform;
    const p = this.config.platforms[key];
    if (p === undefined) throw new FlotillaError('FLT_IMAGE_PLATFORM_UNKNOWN', `no platform named ${key}`);
    return p;
  }

  private key(sel: ImageSelector): { platform: PlatformConfig; image: string; arch: string } {
    const platform = this.platform(sel.platform);
    const ref = parseImageRef(this.config, sel.image);
    return { platform, image: ref.canonical, arch: sel.arch ?? this.config.defaultArch };
  }

  private toImage(row: GatewayImagesTable): Image {
    return toImage(row, this.config.expirationTimeoutMs);
  }

  async pull(
    req: PullImageRequest,
    caller: Caller,
  ): Promise<{ created: boolean; answer: PullImageResponse }> {
    const { platform, image, arch } = this.key(req);
    if (!mayPull(platform, caller))
      throw new FlotillaError(
        'FLT_FORBIDDEN',
        `pulling onto platform ${platform.name} needs its admins or the deployer role`,
      );
    const existing = await this.store.image({ platform: platform.name, image, arch });
    // A private image someone else owns: answer as for any pull, but without revealing it.
    if (existing !== undefined && !maySee(this.config, existing, caller))
      throw new FlotillaError('FLT_CONFLICT', `${image} cannot be pulled onto ${platform.name} by you`);
    const outcome = await this.store.requestPull(
      {
        platform: platform.name,
        image,
        arch,
        requestedBy: caller.username,
        actorId: caller.userId,
        private: req.private ?? ((req.users?.length ?? 0) > 0 || (req.groups?.length ?? 0) > 0),
        users: req.users ?? [],
        groups: req.groups ?? [],
      },
      this.audit,
      caller.sourceIp,
    );
    if (outcome.created && outcome.job) await this.queue.enqueue(outcome.job.id);
    return {
      created: outcome.created,
      answer: { image: this.toImage(outcome.image), job: outcome.job ? toImageJob(outcome.job) : null },
    };
  }

  async list(platform: string | undefined, caller: Operator): Promise<Image[]> {
    if (platform !== undefined) this.platform(platform);
    const rows = await this.store.images(platform);
    return rows.filter((r) => maySee(this.config, r, caller)).map((r) => this.toImage(r));
  }

  /** The row, or FLT_IMAGE_NOT_FOUND, the same answer whether it is missing or hidden. */
  private async visible(sel: ImageSelector, caller: Operator): Promise<GatewayImagesTable> {
    const { platform, image, arch } = this.key(sel);
    const row = await this.store.image({ platform: platform.name, image, arch });
    if (row === undefined || !maySee(this.config, row, caller))
      throw new FlotillaError(
        'FLT_IMAGE_NOT_FOUND',
        `no image ${image} (${arch}) on platform ${platform.name}`,
      );
    return row;
  }

  async show(sel: ImageSelector, caller: Operator): Promise<Image> {
    return this.toImage(await this.visible(sel, caller));
  }

  /** The ready image's id and path; counts as use (resets its expiry). */
  async lookup(sel: ImageSelector, caller: Caller): Promise<ImageLookupResponse> {
    const row = await this.visible(sel, caller);
    if (row.status !== 'ready' || row.path === null || row.content_id === null)
      throw new FlotillaError(
        'FLT_IMAGE_NOT_FOUND',
        `${row.image} (${row.arch}) on ${row.platform} is not ready (${row.status})`,
      );
    const usedAt = await this.store.touch(row);
    await this.audit({
      actorType: 'user',
      actorId: caller.userId,
      action: 'image.lookup',
      subjectType: 'image',
      subjectId: subjectOf(row),
      sourceIp: caller.sourceIp,
      details: null,
    });
    const expirationMs = this.config.expirationTimeoutMs;
    return {
      id: row.content_id,
      path: row.path,
      platform: row.platform,
      image: row.image,
      arch: row.arch,
      expiresAt: expirationMs > 0 ? new Date(Date.parse(usedAt) + expirationMs).toISOString() : null,
    };
  }

  async remove(sel: ImageSelector, caller: Caller): Promise<void> {
    const row = await this.visible(sel, caller);
    const platform = this.platform(row.platform);
    if (!administers(platform, caller))
      throw new FlotillaError(
        'FLT_FORBIDDEN',
        `removing images from ${platform.name} needs its admins or the admin role`,
      );
    const removed = await removeImage(
      { store: this.store, config: this.config, audit: this.audit, log: this.log, fleet: this.fleet },
      row,
      {
        actorType: 'user',
        actorId: caller.userId,
        action: 'image.remove',
        subjectType: 'image',
        subjectId: subjectOf(row),
        sourceIp: caller.sourceIp,
        details: { id: row.content_id, path: row.path },
      },
    );
    if (!removed)
      throw new FlotillaError('FLT_CONFLICT', `${row.image} changed while being removed; try again`);
  }

  async job(id: string, caller: Operator): Promise<ImageJob> {
    const job = await this.store.job(id);
    const row = job && (await this.store.image(job));
    if (job === undefined || (row !== undefined && !maySee(this.config, row, caller)))
      throw new FlotillaError('FLT_IMAGE_JOB_NOT_FOUND', `no import job ${id}`);
    return toImageJob(job);
  }

  platforms(): {
    name: string;
    access: PlatformConfig['access']['type'];
    admins: string[];
    default: boolean;
  }[] {
    return Object.values(this.config.platforms).map((p) => ({
      name: p.name,
      access: p.access.type,
      admins: [...p.admins],
      default: p.name === this.config.defaultPlatform,
    }));
  }

  now(): Date {
    return this.clock.now();
  }
}
