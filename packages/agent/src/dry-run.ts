/**
 * `flotilla agent --dry-run`: what the agent would do now, printed without executing anything.
 * It verifies the assignment like the daemon does (refreshing trusted TUF metadata and fetching
 * root objects into the cache, both of which the daemon would do too) and plans every app.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import type { FetchFn } from '@flotilla/node-kit';
import { agentHttpClient } from './client/http.js';
import { TokenManager } from './client/tokens.js';
import { prepareLocalState } from './startup.js';
import { UpdateEngine } from './update/engine.js';
import { serverUpdateSource } from './update/source.js';
import type { Plan, ReleaseSpec, Step } from './model/release.js';

export interface UpdateDryRun {
  plans: Plan[];
  /** Why the assignment could not be verified (the plans then only finish interrupted work). */
  assignmentError: { code: string; message: string } | null;
}

export async function dryRunUpdates(
  config: AgentConfig,
  options: { logger?: Logger; fetch?: FetchFn } = {},
): Promise<UpdateDryRun> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const local = prepareLocalState({ ...config, offline: true }, logger);
  try {
    const engine = await UpdateEngine.open({
      dataDir: config.dataDir,
      db: local.db,
      logger,
      keepPrevious: config.keepPreviousReleases,
      cacheMaxBytes: config.chunkCacheMaxBytes,
    });
    let targets: ReleaseSpec[] | null = null;
    let assignmentError: UpdateDryRun['assignmentError'] = null;
    const enrollment = local.state.enrollment();
    const serverUrl = config.serverUrl ?? enrollment?.serverUrl ?? null;
    if (config.offline || serverUrl === null || enrollment === null) {
      assignmentError = {
        code: 'FLT_UNAVAILABLE',
        message: 'offline or not enrolled: the assignment is unknown',
      };
    } else {
      const http = agentHttpClient(serverUrl, config, options.fetch);
      const tokens = new TokenManager(http, local.identity, enrollment.deviceId, () => undefined);
      const signal = AbortSignal.timeout(config.requestTimeoutMs * 4);
      try {
        targets = await serverUpdateSource({
          serverUrl,
          deviceId: enrollment.deviceId,
          dataDir: config.dataDir,
          trustedRootFile: config.trustedRootFile,
          tokens,
          cache: engine.cache,
          partialDir: engine.layout.partialDir,
          logger,
          timeoutMs: config.requestTimeoutMs,
        }).assignment(signal);
      } catch (error) {
        const e = error as { code?: unknown; message?: unknown };
        assignmentError = {
          code: typeof e.code === 'string' ? e.code : 'FLT_INTERNAL',
          message: typeof e.message === 'string' ? e.message : String(error),
        };
      }
    }
    // Unknown assignment: plan as if each app should stay where it is (only interrupted work runs).
    const effective =
      targets ?? engine.records.apps().flatMap((app) => engine.records.installed(app).current ?? []);
    const plans = await engine.plans(effective);
    await engine.close();
    return { plans, assignmentError };
  } finally {
    local.db.close();
  }
}

/** Human table (default) or JSON of a dry run. */
export function formatDryRun(result: UpdateDryRun, json: boolean): string {
  if (json) return `${JSON.stringify(result, null, 2)}\n`;
  const lines: string[] = [];
  if (result.assignmentError)
    lines.push(
      `assignment not verified: ${result.assignmentError.code}: ${result.assignmentError.message}`,
      '',
    );
  if (result.plans.length === 0) lines.push('no apps assigned or installed');
  for (const plan of result.plans) {
    lines.push(
      `${plan.app}: ${plan.action}${plan.note ? ` (${plan.note})` : ''}`,
      `  from ${plan.from?.targetPath ?? '-'}`,
      `  to   ${plan.to?.targetPath ?? '-'}`,
    );
    plan.steps.forEach((step, i) => lines.push(`  ${String(i + 1).padStart(2)}. ${describeStep(step)}`));
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

function describeStep(step: Step): string {
  switch (step.kind) {
    case 'fetch':
      return `fetch     objects of ${step.release.version} the cache lacks (changed files as deltas where offered)${
        step.overlapStage ? '; staging begins once the tree is known, while the files arrive' : ''
      }`;
    case 'stage':
      return `stage     releases/${step.release.root.slice(0, 12)}… (materialize, reusing unchanged files, syncfs, rename)`;
    case 'stop':
      return `stop      ${step.release.app} (${step.release.runtime})`;
    case 'switch':
      return step.release
        ? `switch    current -> releases/${step.release.root.slice(0, 12)}…`
        : 'switch    (nothing to switch to)';
    case 'start':
      return `start     ${step.release.version} (${step.release.runtime})`;
    case 'health':
      return `health    window for ${step.release.version}`;
    case 'commit':
      return `commit    ${step.release.version}${step.replaced ? `, keep ${step.replaced.version} as previous` : ''}`;
    case 'rollback':
      return `rollback  to ${step.release?.version ?? 'nothing'}, hold ${step.failed.version}: ${step.reason.message}`;
    case 'cleanup':
      return `cleanup   keep ${step.keep.length} release dir(s), trim the chunk cache`;
  }
}
