/**
 * The loader's install directory (docs/agent-lifecycle.md):
 *
 * ```
 * <install>/versions/<version>/   one agent release tree (bin/node, lib/flotilla-agent.mjs, ...)
 * <install>/current -> versions/<version>    switched by renaming a temp symlink over it
 * <install>/previous -> versions/<version>
 * <install>/loader-state.json     the loader's journal, written before each step of a switch
 * <install>/run/agent.pid, run/healthy        the child agent's pid, its health marker
 * ```
 *
 * The agent and the probe find the loader through `<data-dir>/apps/flotilla-agent/data/loader.json`
 * (the app's persistent data directory, which the health probe gets as FLOTILLA_APP_DATA).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { writeFileAtomic } from '../state/files.js';

/** The app name agent releases are pushed under. */
export const AGENT_APP = 'flotilla-agent';

export type LoaderPhase = 'idle' | 'switching' | 'trial' | 'rolling-back';

export interface Trial {
  from: string | null;
  to: string;
  /** The release's root object id (the engine's release directory name), or null for a local install. */
  root: string | null;
  /** Why the trial is being undone (rolling-back). */
  reason?: string;
}

/** The loader's journal: written (temp + fsync + rename) before each step of a switch. */
export interface LoaderState {
  phase: LoaderPhase;
  /** The version `current` points at once the step recorded in `phase` has finished. */
  current: string | null;
  previous: string | null;
  trial: Trial | null;
  /** Release roots the loader ran and kept: root → version. */
  committed: Record<string, string>;
  /** Release roots the loader tried and undid: root → why. Never tried again. */
  failed: Record<string, string>;
}

export interface HandoverRequest {
  /** The engine's release directory holding the new agent tree. */
  releaseDir: string;
  root: string;
  version: string;
}

export class InstallLayout {
  constructor(readonly dir: string) {}
  get versionsDir(): string {
    return join(this.dir, 'versions');
  }
  version(v: string): string {
    return join(this.dir, 'versions', v);
  }
  get current(): string {
    return join(this.dir, 'current');
  }
  get previous(): string {
    return join(this.dir, 'previous');
  }
  get stateFile(): string {
    return join(this.dir, 'loader-state.json');
  }
  get runDir(): string {
    return join(this.dir, 'run');
  }
  get pidFile(): string {
    return join(this.dir, 'run', 'agent.pid');
  }
  get healthFile(): string {
    return join(this.dir, 'run', 'healthy');
  }
  get bootsFile(): string {
    return join(this.dir, 'run', 'loader-boots');
  }
}

/** `<data-dir>/apps/flotilla-agent/data`: where the loader and the agent's health probe meet. */
export function handoverDir(agentDataDir: string): string {
  return join(agentDataDir, 'apps', AGENT_APP, 'data');
}
export const POINTER_FILE = 'loader.json';
export const REQUEST_FILE = 'handover.json';

export const EMPTY_STATE: LoaderState = {
  phase: 'idle',
  current: null,
  previous: null,
  trial: null,
  committed: {},
  failed: {},
};

export function readJson<T>(path: string): T | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new FlotillaError('FLT_IO', `cannot read ${path}`, { details: { path }, cause: e });
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new FlotillaError('FLT_IO', `${path} is not valid JSON (delete it to start over)`, {
      details: { path },
      cause: e,
    });
  }
}

export function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n', 0o644);
}

/** Points `link` at `target` atomically: a temp symlink renamed over it (a crash leaves old or new). */
export function switchLink(link: string, target: string): void {
  const temp = `${link}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    symlinkSync(target, temp);
    renameSync(temp, link);
  } catch (e) {
    rmSync(temp, { force: true });
    throw new FlotillaError('FLT_IO', `cannot point ${link} at ${target}`, { details: { link }, cause: e });
  }
}
