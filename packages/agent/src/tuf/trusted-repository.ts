/**
 * One TUF repository as the agent sees it: a tuf-js Updater over `<data-dir>/tuf/<name>/`, whose
 * `root.json` is the trusted root (provisioned at enrollment, then advanced only by verified
 * rotations). tuf-js persists metadata only after verifying it.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import {
  createFileExclusive,
  parseMetadata,
  verifySignedBy,
  writeFileAtomic as writeFileDurably,
} from '@flotilla/node-kit';
import { Updater } from 'tuf-js';
import type { TargetFile } from 'tuf-js';
import { mapRefreshError } from './error-mapping.js';
import type { RepositoryName } from './error-mapping.js';
import { FailureLog } from './failure-log.js';
import { RecordingFetcher } from './fetcher.js';
import type { FetchOptions } from './fetcher.js';
import { memoryUpdater } from './memory-metadata.js';
import type { MemoryMetadata } from './memory-metadata.js';

export interface TrustedRepositoryOptions {
  name: RepositoryName;
  /** Base URL of the repository's metadata, e.g. `https://server/tuf/image/`. */
  metadataUrl: string;
  /** Directory of trusted metadata, e.g. `<data-dir>/tuf/image` (with `memory`: its name only). */
  dir: string;
  /** Trusted metadata in memory instead of `dir` (the fleet simulator; memory-metadata.ts). */
  memory?: MemoryMetadata;
  fetch?: FetchOptions;
}

/**
 * Stores the initial trusted root (from enrollment) unless one is already trusted: a trusted root is
 * never replaced, only advanced by rotations the current root vouches for. The root must be
 * self-signed (threshold of its own root keys).
 */
export async function provisionTrustedRoot(dir: string, rootBytes: Uint8Array): Promise<'stored' | 'kept'> {
  const root = parseMetadata('root', rootBytes);
  verifySignedBy(root, 'root', root);
  let created: 'created' | 'exists';
  try {
    created = await createFileExclusive(dir, 'root.json', rootBytes, 0o600);
  } catch (cause) {
    throw new FlotillaError('FLT_IO', `cannot store the trusted root in ${dir}`, { cause });
  }
  if (created === 'exists') return 'kept';
  await writeFileAtomic(join(dir, LAST_GOOD_ROOT), Buffer.from(rootBytes));
  return 'stored';
}

/** `provisionTrustedRoot` for trusted metadata kept in memory (memory-metadata.ts). */
export function provisionTrustedRootInMemory(
  memory: MemoryMetadata,
  rootBytes: Uint8Array,
): 'stored' | 'kept' {
  const root = parseMetadata('root', rootBytes);
  verifySignedBy(root, 'root', root);
  if (memory.has('root.json')) return 'kept';
  memory.write('root.json', rootBytes);
  return 'stored';
}

/** A copy of the trusted root written atomically after each successful refresh (tuf-js writes in place). */
const LAST_GOOD_ROOT = 'root.last-good.json';

async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  await writeFileDurably(path, bytes).catch((cause: unknown) => {
    throw new FlotillaError('FLT_IO', `cannot write ${path}`, { cause });
  });
}

/** What a refresh found: current metadata, or a repository that has published no timestamp yet. */
export type RefreshOutcome = 'refreshed' | 'unpublished';

export class TrustedRepository {
  private constructor(
    private readonly opts: TrustedRepositoryOptions,
    private readonly updater: Updater,
    private readonly failures: FailureLog,
  ) {}

  /**
   * Opens the repository; FLT_TUF_NOT_INITIALIZED when no root is trusted yet. tuf-js writes
   * `root.json` in place, so a crash can leave it torn: then the last root known good (kept by
   * `refresh`) is restored and the chain is walked again from there.
   */
  static async open(opts: TrustedRepositoryOptions): Promise<TrustedRepository> {
    const failures = new FailureLog();
    const create = () => {
      const options = {
        metadataDir: opts.dir,
        metadataBaseUrl: opts.metadataUrl,
        fetcher: new RecordingFetcher(failures, opts.fetch),
      };
      return opts.memory ? memoryUpdater(opts.memory, options) : new Updater(options);
    };
    let updater: Updater;
    try {
      updater = create();
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new FlotillaError(
          'FLT_TUF_NOT_INITIALIZED',
          `no trusted ${opts.name} root in ${opts.dir}; the device must be provisioned first`,
          { cause },
        );
      }
      // Memory is never torn: a root that does not load there is refused.
      if (opts.memory) throw mapRefreshError(opts.name, cause, undefined);
      const lastGood = await readFile(join(opts.dir, LAST_GOOD_ROOT)).catch(() => undefined);
      if (!lastGood) throw mapRefreshError(opts.name, cause, undefined);
      await writeFileAtomic(join(opts.dir, 'root.json'), lastGood);
      try {
        updater = create();
      } catch (again) {
        throw mapRefreshError(opts.name, again, undefined);
      }
    }
    return new TrustedRepository(opts, updater, failures);
  }

  /**
   * Runs the TUF client workflow (spec 5.3–5.6); throws a FlotillaError with a FLT_TUF_* code on
   * refusal. `unpublished`: the repository has a root but has never published a timestamp (404 on
   * `timestamp.json`, and this device trusts none), i.e. nothing was signed into it yet; the root was
   * still updated (5.3) and nothing else is trusted. A device that already trusts a timestamp gets an
   * error for the same 404: a repository never goes back to having none.
   */
  async refresh(): Promise<RefreshOutcome> {
    this.failures.clear();
    try {
      await this.updater.refresh();
    } catch (error) {
      if (this.#isUnpublished()) {
        await this.#keepLastGoodRoot();
        return 'unpublished';
      }
      throw mapRefreshError(this.opts.name, error, this.failures.last, this.#location);
    }
    await this.#keepLastGoodRoot();
    return 'refreshed';
  }

  #isUnpublished(): boolean {
    const last = this.failures.last;
    return (
      last?.step === 'timestamp' &&
      last.kind === 'fetch-failed' &&
      last.status === 404 &&
      !(this.opts.memory
        ? this.opts.memory.has('timestamp.json')
        : existsSync(join(this.opts.dir, 'timestamp.json')))
    );
  }

  get #location(): string | MemoryMetadata {
    return this.opts.memory ?? this.opts.dir;
  }

  async #keepLastGoodRoot(): Promise<void> {
    if (this.opts.memory) return; // nothing to recover from: memory is never torn
    const root = await readFile(join(this.opts.dir, 'root.json'));
    const kept = await readFile(join(this.opts.dir, LAST_GOOD_ROOT)).catch(() => undefined);
    if (!kept || !kept.equals(root)) await writeFileAtomic(join(this.opts.dir, LAST_GOOD_ROOT), root);
  }

  /** The trusted target at `path` (after `refresh`), or undefined. */
  async target(path: string): Promise<TargetFile | undefined> {
    this.failures.clear();
    try {
      return await this.updater.getTargetInfo(path);
    } catch (error) {
      throw mapRefreshError(this.opts.name, error, this.failures.last, this.#location);
    }
  }

  /**
   * Every trusted target (after `refresh`). The names come from the `targets.json` tuf-js persisted
   * after verifying it; each entry is then taken from tuf-js's in-memory trusted set, so a file
   * altered on disk can hide entries but never add one.
   */
  async targets(): Promise<TargetFile[]> {
    let bytes: Buffer;
    try {
      bytes = this.opts.memory
        ? this.opts.memory.read('targets.json')
        : await readFile(join(this.opts.dir, 'targets.json'));
    } catch (cause) {
      throw new FlotillaError(
        'FLT_TUF_NOT_INITIALIZED',
        `${this.opts.name}: no trusted targets; refresh first`,
        { cause },
      );
    }
    const found: TargetFile[] = [];
    for (const path of Object.keys(parseMetadata('targets', bytes).signed.targets)) {
      const target = await this.target(path);
      if (target) found.push(target);
    }
    return found;
  }
}
