/**
 * One connected session of an enrolled device: a token, then the state poller, the inventory
 * reporter and the control channel side by side until the session's signal aborts (stop, a
 * terminal status, or the server forgetting the device).
 */
import type { DeviceStatus } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { AgentConfig } from './config.js';
import { reactionTo } from './client/classify.js';
import { DeviceApi } from './client/device-api.js';
import type { JsonHttpClient } from '@flotilla/node-kit';
import { TokenManager } from './client/tokens.js';
import { ControlChannel } from './control/channel.js';
import { collectInventory } from './inventory/collect.js';
import { InventoryReporter } from './inventory/reporter.js';
import { markReachedServer } from './loader/health-marker.js';
import type { DeviceIdentity } from './state/identity.js';
import type { LocalState } from './state/local-state.js';
import { serverBackoff } from './sync/backoff.js';
import { StatePoller } from './sync/poller.js';
import { sleep } from './util/sleep.js';
import type { UpdateEngine } from './update/engine.js';
import type { AssignmentAhead, ReleaseSpec } from './model/release.js';
import { SessionUpdates } from './update/session-updates.js';
import type { RemoteAccess } from './control/streams.js';

export interface SessionDeps {
  config: AgentConfig;
  http: JsonHttpClient;
  identity: DeviceIdentity;
  deviceId: string;
  state: LocalState;
  logger: Logger;
  random?: () => number;
  applyStatus: (status: DeviceStatus) => void;
  /** The daemon's verdict on an error: true to retry, false when the component must stop. */
  handleError: (error: unknown) => boolean;
  isPending: () => boolean;
  /** The update engine (docs/updates.md); null when updates are not wired (tests of other parts). */
  updates?: UpdateEngine | null;
  /** Replaces the TUF-verified assignment (StartAgentOptions.assignment). */
  assignment?: (signal: AbortSignal, ahead?: AssignmentAhead) => Promise<ReleaseSpec[]>;
  /** `--once`: told how the update pass went; the session then ends. */
  onPassDone?: (ok: boolean) => void;
}

export async function runSession(deps: SessionDeps, signal: AbortSignal): Promise<void> {
  const { config, logger, state } = deps;
  // A token is the server's answer: an accepted device has reached it (the loader's health marker).
  const tokens = new TokenManager(deps.http, deps.identity, deps.deviceId, (status) => {
    deps.applyStatus(status);
    if (status === 'accepted') markReachedServer();
  });
  const onError = (error: unknown): boolean => {
    if (reactionTo(error) === 'refresh-token') tokens.invalidate();
    return deps.handleError(error);
  };
  if (!(await firstToken(tokens, deps, onError, signal))) return;

  const api = new DeviceApi(deps.http, tokens);
  const updates = deps.updates
    ? new SessionUpdates({
        engine: deps.updates,
        config,
        http: deps.http,
        tokens,
        deviceId: deps.deviceId,
        stateVersion: () => state.stateCursor().stateVersion,
        logger: logger.child({ component: 'updates' }),
        random: deps.random,
        ...(deps.assignment && { assignment: deps.assignment }),
      })
    : null;
  if (updates !== null && (config.updateOnStart || config.once)) {
    // Reswarm's --update-on-start: updates (the agent's own included) before polls, inventory and
    // the control channel start.
    logger.info('checking for updates before the session settles');
    const ok = await updates.pass(signal);
    logger.info(
      { ok },
      ok
        ? 'update pass done: every app is at its assignment'
        : 'update pass done: an update failed or was rolled back',
    );
    if (config.once) {
      updates.close();
      if (!signal.aborted) deps.onPassDone?.(ok);
      return;
    }
  }
  const poller = new StatePoller({
    api,
    state,
    logger: logger.child({ component: 'poller' }),
    configuredIntervalMs: config.pollIntervalMs,
    onState: (desired) => {
      deps.applyStatus(desired.status);
      updates?.trigger();
    },
    onError,
    isPending: deps.isPending,
    random: deps.random,
  });
  const inventoryLogger = logger.child({ component: 'inventory' });
  const reporter = new InventoryReporter({
    api,
    state,
    logger: inventoryLogger,
    collect: () => collectInventory(config, { logger: inventoryLogger }),
    checkIntervalMs: config.inventoryCheckIntervalMs,
    reportIntervalMs: config.inventoryIntervalMs,
    onError,
    random: deps.random,
  });
  const channel = new ControlChannel({
    baseUrl: deps.http.baseUrl,
    tokens,
    logger: logger.child({ component: 'control' }),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    handshakeTimeoutMs: config.requestTimeoutMs,
    closeTimeoutMs: Math.min(config.stopTimeoutMs, 5000),
    pollIntervalMs: config.pollIntervalMs,
    onError,
    random: deps.random,
    handlers: {
      stateVersion: () => state.stateCursor().stateVersion,
      onWelcome: (welcome) => {
        deps.applyStatus(welcome.status);
        // Changes made while the channel was down are fetched at once.
        if (welcome.stateVersion !== state.stateCursor().stateVersion) poller.pollNow();
      },
      // One trigger path: the push polls, and a changed state (onState above) converges once.
      onStateChanged: () => poller.pollNow(),
      onRequestInventory: () => reporter.reportNow(signal),
      ...(updates && {
        onAppAction: (action, app) => updates.act(action, app, signal),
        onLogs: (request) => updates.logs(request),
        remote: remoteAccess(deps.updates as UpdateEngine, config),
      }),
    },
  });
  await Promise.all([
    poller.run(signal),
    reporter.run(signal),
    channel.run(signal),
    ...(updates ? [updates.run(signal)] : []),
  ]);
}

/** What the control channel's service commands and streams reach (docs/remote-access.md). */
function remoteAccess(engine: UpdateEngine, config: AgentConfig): RemoteAccess {
  const ports = new Set(config.tunnelHostPorts.map(Number).filter((p) => p >= 1 && p <= 65535));
  return {
    runtimeOf: (app) => engine.runtimeOfApp(app),
    tunnelHostPorts: ports,
    control: (app, action, service) => engine.control(app, action, service),
    stats: async (app) =>
      (await engine.serviceStats(app)).map((s) => ({
        service: s.service.slice(0, 128),
        state: s.state.slice(0, 64),
        health: s.health,
        restarts: s.restarts,
        ...(s.cpuPercent !== undefined && { cpuPercent: Math.max(0, s.cpuPercent) }),
        ...(s.memoryBytes !== undefined && { memoryBytes: s.memoryBytes }),
        ...(s.pid !== undefined && { pid: s.pid }),
        ...(s.containerId !== undefined && { containerId: s.containerId.slice(0, 128) }),
        ...(s.image !== undefined && { image: s.image.slice(0, 512) }),
        ...(s.startedAt !== undefined && { startedAt: s.startedAt.slice(0, 64) }),
      })),
  };
}

async function firstToken(
  tokens: TokenManager,
  deps: SessionDeps,
  onError: (error: unknown) => boolean,
  signal: AbortSignal,
): Promise<boolean> {
  const backoff = serverBackoff(deps.config.pollIntervalMs, deps.random);
  while (!signal.aborted) {
    try {
      await tokens.get(signal);
      return !signal.aborted;
    } catch (e) {
      if (signal.aborted || !onError(e)) return false;
      const delayMs = backoff.nextAfter(e);
      deps.logger.warn({ err: e, retryInMs: delayMs }, 'cannot get a device token; retrying');
      await sleep(delayMs, signal);
    }
  }
  return false;
}
