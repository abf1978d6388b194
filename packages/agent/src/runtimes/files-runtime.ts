/**
 * The `files` runtime (the mig-loader case): the tree appears at a configured path, a symlink to
 * the app's `current` (so the transaction's switch is the install), then an optional post-install
 * command runs; its failure fails the update.
 */
import { lstat, mkdir, readlink, rename, symlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import type { ReleaseSpec } from '../model/release.js';
import { appEnv, filesConfig } from './config.js';
import { healthWindow } from './health.js';
import { describeFailure, runCommand } from './run-command.js';
import type { AppContext, Runtime } from './runtime.js';

const DEFAULT_POST_INSTALL_TIMEOUT_MS = 120_000;

export class FilesRuntime implements Runtime {
  readonly kind = 'files' as const;
  private readonly lastFailure = new Map<string, string>();

  validate(release: ReleaseSpec): void {
    filesConfig(release);
  }

  async start(ctx: AppContext, signal: AbortSignal): Promise<void> {
    const config = filesConfig(ctx.release);
    this.lastFailure.delete(ctx.app);
    if (config.path !== undefined) await linkInstallPath(config.path, ctx.currentLink);
    if (config.postInstall === undefined) return;
    const result = await runCommand(config.postInstall, {
      cwd: ctx.releaseDir,
      env: appEnv(ctx),
      timeoutMs: config.postInstallTimeoutMs ?? DEFAULT_POST_INSTALL_TIMEOUT_MS,
      signal,
    });
    if (result.code !== 0) {
      const reason = `post-install command failed: ${describeFailure(config.postInstall, result)}`;
      this.lastFailure.set(ctx.app, reason);
      throw new FlotillaError('FLT_RUNTIME_FAILED', reason, { details: { app: ctx.app } });
    }
  }

  /** After an agent restart the install path must still point at `current`; the post-install command does not run again. */
  adopt(ctx: AppContext): Promise<void> {
    const { path } = filesConfig(ctx.release);
    return path === undefined ? Promise.resolve() : linkInstallPath(path, ctx.currentLink);
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  async health(ctx: AppContext, signal: AbortSignal): Promise<void> {
    const config = filesConfig(ctx.release);
    await healthWindow(config.health, {
      cwd: ctx.releaseDir,
      env: appEnv(ctx),
      signal,
      failure: () => this.lastFailure.get(ctx.app) ?? null,
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Makes `path` a symlink to `target`, atomically; refuses to replace anything but a symlink. */
async function linkInstallPath(path: string, target: string): Promise<void> {
  const existing = await lstat(path).catch(() => null);
  if (existing && !existing.isSymbolicLink()) {
    throw new FlotillaError(
      'FLT_TARGET_EXISTS',
      `${path} exists and is not a symlink; the files runtime installs by pointing a symlink there (move it away first)`,
      { details: { path } },
    );
  }
  if (existing && (await readlink(path)) === target) return;
  try {
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.flotilla-${randomBytes(4).toString('hex')}`;
    await symlink(target, temp);
    await rename(temp, path);
  } catch (cause) {
    throw new FlotillaError('FLT_IO', `cannot link ${path} to ${target}`, { details: { path }, cause });
  }
}
