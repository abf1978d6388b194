/**
 * The health probe of an agent release (`flotilla-agent loader-probe`, the release's health
 * command; docs/agent-lifecycle.md). The update engine runs it with the new release's directory as
 * its working directory. It hands the release to the loader, then waits for the loader's verdict:
 * exit 0 once the loader runs it and it reached the server, exit 1 with the loader's reason once
 * the loader switched back. The handover kills the agent that started the probe; the probe notices
 * (its parent changed) and ends, and the new agent's engine runs it again.
 */
import { existsSync, realpathSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../state/files.js';
import { sleep } from '../util/sleep.js';
import { InstallLayout, POINTER_FILE, readJson, REQUEST_FILE } from './layout.js';
import type { HandoverRequest, LoaderState } from './layout.js';

export interface ProbeOptions {
  /** The release directory (the probe's working directory). */
  releaseDir: string;
  /** FLOTILLA_APP_DATA: the flotilla-agent app's data directory. */
  appDataDir: string;
  stderr: { write(text: string): unknown };
  stdout: { write(text: string): unknown };
  intervalMs?: number;
}

/** Resolves with the exit status. */
export async function runLoaderProbe(options: ProbeOptions): Promise<number> {
  const fail = (message: string): number => {
    options.stderr.write(`${message}\n`);
    return 1;
  };
  const pointer = readJson<{ installDir?: string }>(join(options.appDataDir, POINTER_FILE));
  if (pointer?.installDir === undefined)
    return fail(
      'no loader runs this agent: agent releases are installed by the loader (flotilla-agent loader; docs/agent-lifecycle.md)',
    );
  const layout = new InstallLayout(pointer.installDir);
  const releaseDir = realpathSync(options.releaseDir);
  const root = basename(releaseDir);
  const manifest = readJson<{ version?: string }>(join(releaseDir, 'flotilla-agent.json'));
  if (typeof manifest?.version !== 'string' || !existsSync(join(releaseDir, 'bin', 'flotilla-agent')))
    return fail(
      `${releaseDir} is not an agent release (no flotilla-agent.json with a version, or no bin/flotilla-agent)`,
    );
  const requestFile = join(options.appDataDir, REQUEST_FILE);
  const parent = process.ppid;
  let requested = false;
  for (;;) {
    const state = readJson<LoaderState>(layout.stateFile);
    const failed = state?.failed[root];
    if (failed !== undefined)
      return fail(`the loader switched back from agent ${manifest.version}: ${failed}`);
    if (
      state?.phase === 'idle' &&
      state.committed[root] !== undefined &&
      state.current === state.committed[root]
    ) {
      rmSync(requestFile, { force: true });
      options.stdout.write(`the loader runs agent ${manifest.version}, and it reached the server\n`);
      return 0;
    }
    if (!requested && state?.trial?.root !== root) {
      const request: HandoverRequest = { releaseDir, root, version: manifest.version };
      writeFileAtomic(requestFile, JSON.stringify(request) + '\n', 0o644);
      requested = true;
    }
    // The agent that started this probe was replaced (the handover): its successor asks again.
    if (process.ppid !== parent) return fail('the agent that ran this probe stopped');
    await sleep(options.intervalMs ?? 250, new AbortController().signal);
  }
}
