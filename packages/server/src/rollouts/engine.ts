/**
 * The rollout engine (docs/rollouts.md "How it works"). Its state lives only in the database: each
 * tick locks one rollout's row (SELECT … FOR UPDATE on PostgreSQL, the write lock on SQLite) and in
 * that transaction moves its devices' phases on from what the devices reported (`device_apps`),
 * applies the gates (failure threshold, success threshold, approval, last wave), and assigns the
 * devices whose turn it is through the deployments module. Two server processes on one database
 * therefore never advance a wave twice or assign a device twice, and a restarted server carries on
 * from the rows. Ticks run periodically and when a device report or an operator action nudges.
 */
import type { AppProcessStatus, RolloutPhase } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { Expression, SqlBool } from 'kysely';
import type { Db } from '../context.js';
import type { Dialect } from '../db/dialect.js';
import { lockRows, writeTransaction } from '../db/write-transaction.js';
import { assignDevicesInTransaction, readAppLogs } from '../deployments/index.js';
import type { AssignedDevice, AssignedTo, DeployServices } from '../deployments/index.js';
import { compileFilter } from '../devices/index.js';
import type { RolloutEvent } from '../events/bus.js';
import { crashPoint } from '../test-hooks.js';
import { Tally } from './counts.js';
import type { RolloutRow } from './view.js';
import { parseWindow, windowOpen } from './window.js';

/** Restarts of the app's process during the soak that count as a crash loop. */
export const CRASH_LOOP_RESTARTS = 3;
const INSERT_CHUNK = 500;
/** Least time between two passes over the active rollouts. */
const MIN_TICK_GAP_MS = 50;
/**
 * A pass waits this many times its own duration before the next one, so that the passes of a large
 * rollout (reports nudge continuously) take at most a third of the process's time.
 */
const TICK_GAP_PER_COST = 2;
/**
 * Least time between two passes that only look at the devices that reported (an operator's action
 * or the periodic tick does not wait for it): each pass has a cost that does not depend on how many
 * devices it moves on (the gate counts the rollout's devices), so a fleet's reports are taken in
 * batches rather than a pass every 50 ms.
 */
const REPORT_TICK_GAP_MS = 250;
/**
 * The periodic full pass is skipped while less than this many times the last full pass's duration
 * has passed since it ended: a rollout whose full passes are costly (thousands of soaking devices)
 * spends at most about a tenth of the process's time on them. Reports and operators' actions are
 * not held back by it.
 */
const PERIODIC_GAP_PER_COST = 10;
/** Devices whose reports a pass looks at alone; more and it looks at every in-flight device. */
const MAX_REPORTED = 5_000;
/** Device ids per statement when a pass looks at the reported devices only. */
const REPORTED_CHUNK = 500;
/** Bytes of a failed device's app output kept with its failure. */
const LOG_TAIL_BYTES = 4096;
const ACTIVE_STATES = ['running', 'paused', 'waiting-approval'] as const;
const IN_FLIGHT: readonly RolloutPhase[] = ['notified', 'downloading', 'installing', 'soaking'];
/** The agent's update phases that are the rollout phase `downloading`, and `installing`. */
const DOWNLOAD_PHASES = ['verifying', 'downloading'];
const INSTALL_PHASES = ['installing', 'stopping', 'switching', 'starting', 'health'];

/** Delay before retry `n` (0-based): 30 s doubling, at most one hour. */
export function retryDelayMs(n: number): number {
  return Math.min(3_600_000, 30_000 * 2 ** n);
}

/** What a transaction leaves to do after its commit. */
export interface AfterCommit {
  assigned: AssignedDevice[];
  /** What `assigned` were assigned (the rollout's release at the commit). */
  assignedTo?: AssignedTo;
  unassigned: AssignedDevice[];
  events: RolloutEvent[];
  more: boolean;
}

export function afterCommit(): AfterCommit {
  return { assigned: [], unassigned: [], events: [], more: false };
}

const phaseOfUpdate = (phase: string | null): RolloutPhase | null => {
  switch (phase) {
    case 'assigned':
      return 'notified';
    case 'verifying':
    case 'downloading':
      return 'downloading';
    case 'installing':
    case 'stopping':
    case 'switching':
    case 'starting':
    case 'health':
      return 'installing';
    default:
      return null;
  }
};

export interface EngineOptions {
  /** How often every active rollout is looked at (besides the nudges). */
  tickMs: number;
}

export class RolloutEngine {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | null = null;
  #again = false;
  /** Whether the next pass looks at every in-flight device (else at `#reported` only). */
  #full = true;
  /** Devices that reported to this process since the last pass. */
  readonly #reported = new Set<string>();
  /**
   * Whether the last pass found an active rollout. While it found none, a report starts no pass
   * (a deploy's thousands of reports would each read the rollouts table for nothing); a rollout
   * started here nudges a full pass, one started by another server process is found by the
   * periodic one.
   */
  #anyActive = true;
  #stopped = false;
  /** When the next pass may start (ms): a full one, and one over reports only (later, to batch them). */
  #next = 0;
  #nextForReports = 0;
  /** Before this time (ms) the periodic tick starts no full pass (`PERIODIC_GAP_PER_COST`). */
  #nextPeriodic = 0;
  /** Rollouts whose last pass left devices of a started wave to assign. */
  readonly #assigning = new Set<string>();
  /** Ends the wait before a pass early (a full pass was asked for). */
  #wake: (() => void) | undefined;
  #publishing: Promise<void> = Promise.resolve();
  readonly #abort = new AbortController();

  constructor(
    private readonly svc: DeployServices,
    private readonly opts: EngineOptions,
  ) {}

  start(): void {
    this.#timer = setInterval(() => {
      if (Date.now() >= this.#nextPeriodic) this.nudge();
    }, this.opts.tickMs);
    this.#timer.unref();
    this.nudge();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    clearInterval(this.#timer);
    this.#wake?.();
    await this.#running;
    await this.#publishing;
  }

  /**
   * Runs a tick of every active rollout soon (coalesced with one already running). With a device
   * (its report arrived here), that pass may look at the devices that reported only; without, it
   * looks at every in-flight device (the periodic tick, an operator's action). The periodic ticks
   * catch whatever reached other server processes, or the soak's clock.
   */
  nudge(deviceId?: string): void {
    if (this.#stopped) return;
    if (deviceId !== undefined && !this.#anyActive) return;
    if (deviceId === undefined) {
      this.#full = true;
      this.#wake?.();
    } else if (!this.#full) {
      this.#reported.add(deviceId);
      if (this.#reported.size > MAX_REPORTED) this.#full = true;
    }
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = null;
    });
  }

  /** Resolves once the ticks asked for so far have run (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #loop(): Promise<void> {
    do {
      // Reports from a large fleet nudge continuously: passes are spaced by their own cost, and
      // reports that arrive one by one are taken together (the spacing holds across loops: a
      // report arriving after the loop ended waits like one that arrived during a pass).
      const next = this.#next;
      const wait = (this.#full ? next : this.#nextForReports) - Date.now();
      if (wait > 0)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          // A full pass asked for meanwhile waits only until `next`.
          this.#wake = () => {
            clearTimeout(timer);
            setTimeout(resolve, Math.max(0, next - Date.now()));
          };
        }).finally(() => {
          this.#wake = undefined;
        });
      if (this.#stopped) break;
      const started = Date.now();
      this.#again = false;
      const only = this.#full ? undefined : [...this.#reported];
      this.#full = false;
      this.#reported.clear();
      let more = false;
      try {
        more = await this.tickAll(only);
      } catch (err) {
        this.#full = true;
        this.svc.ctx.log.warn({ err }, 'a rollout tick failed; the next tick retries');
      }
      const ended = Date.now();
      if (only === undefined) this.#nextPeriodic = ended + (ended - started) * PERIODIC_GAP_PER_COST;
      const cost = (ended - started) * TICK_GAP_PER_COST;
      // A wave still being assigned goes on at once (devices wait to be told); reports can wait.
      this.#next = ended + (more ? MIN_TICK_GAP_MS : Math.max(MIN_TICK_GAP_MS, cost));
      this.#nextForReports = ended + (more ? MIN_TICK_GAP_MS : Math.max(REPORT_TICK_GAP_MS, cost));
    } while (this.#again && !this.#stopped);
  }

  /**
   * One tick of every active rollout; `only`: look at these in-flight devices alone. Returns
   * whether one has more to do at once (devices of a started wave still to assign).
   */
  async tickAll(only?: readonly string[]): Promise<boolean> {
    const rows = await this.svc.ctx.db
      .selectFrom('rollouts')
      .select('id')
      .where('state', 'in', [...ACTIVE_STATES])
      .orderBy('created_at')
      .execute();
    this.#anyActive = rows.length > 0;
    let more = false;
    for (const { id } of rows) {
      if (this.#stopped) return false;
      if (await this.tick(id, only)) more = true;
    }
    if (more) this.#again = true;
    return more;
  }

  /**
   * One tick of one rollout; returns whether it has more to do at once. `only`: the in-flight
   * devices to move on (the others are looked at by the next tick without it).
   */
  async tick(rolloutId: string, only?: readonly string[]): Promise<boolean> {
    const { ctx } = this.svc;
    const post = afterCommit();
    await writeTransaction(ctx.db, ctx.dialect, async (trx) => {
      const row = await lockRows(
        trx.selectFrom('rollouts').selectAll().where('id', '=', rolloutId),
        ctx.dialect,
      ).executeTakeFirst();
      if (!row || !(ACTIVE_STATES as readonly string[]).includes(row.state)) return;
      const now = ctx.clock.now();
      // Devices per wave and phase, kept in the row: changed below with each device's phase.
      const tally = await Tally.of(trx, row);
      const settled = await this.#refresh(trx, row, tally, now, post, only);
      if (row.state === 'running') {
        const added = row.include_new === 1 ? await this.#addNew(trx, row, tally, now) : 0;
        // The gates read the kept counts: no statement unless a gate opens or closes.
        const wave = row.current_wave;
        await this.#gate(trx, row, tally, now, post);
        // Devices become due when a wave starts, a retry or a new device makes them pending, or the
        // last pass left some of a started wave (500 a pass); else a pass over reports has none to
        // look for. Full passes look whenever the counts have pending devices of a started wave
        // (a retry's delay ending).
        const mayBeDue =
          only === undefined ||
          settled > 0 ||
          added > 0 ||
          row.current_wave !== wave ||
          this.#assigning.has(rolloutId);
        if (row.state === 'running' && mayBeDue && tally.pendingUpTo(row.current_wave) > 0)
          await this.#assignDue(trx, row, tally, now, post);
      }
      await tally.save(trx, row);
    });
    if (post.more) this.#assigning.add(rolloutId);
    else this.#assigning.delete(rolloutId);
    if (post.assigned.length > 0) crashPoint('rollout.after-assign');
    void this.publish(post);
    return post.more;
  }

  /**
   * What a commit leaves to do, in commit order: the devices changed are told at once and their
   * director metadata re-signed in the background (`DeploymentJobs.announce`, shared with
   * `deploy`: bounded concurrency, or on the spot when a device reads it first, and after a stop
   * at the next start from the re-sign markers), then the events are emitted.
   */
  publish(post: AfterCommit): Promise<void> {
    const run = this.#publishing.then(() => {
      try {
        this.#publishNow(post);
      } catch (err) {
        this.svc.ctx.log.warn({ err }, 'announcing rollout changes failed; devices catch up when they read');
      }
    });
    this.#publishing = run;
    return run;
  }

  #publishNow(post: AfterCommit): void {
    const { jobs } = this.svc;
    if (post.assigned.length > 0 && post.assignedTo !== undefined)
      void jobs.announce(post.assigned, post.assignedTo);
    if (post.unassigned.length > 0) void jobs.announce(post.unassigned);
    for (const e of post.events) {
      this.svc.events.emit(e);
      if (e.type === 'rollout.device.failed' && !this.#abort.signal.aborted)
        void this.#keepLogTail(e.rolloutId, e.deviceId);
    }
  }

  /**
   * Keeps the tail of a failed device's app output with its failure (`rollout why`), read from the
   * device if it is connected to this server (a `process` app; others have none). Best effort.
   */
  async #keepLogTail(rolloutId: string, deviceId: string): Promise<void> {
    const { ctx } = this.svc;
    try {
      const row = await ctx.db
        .selectFrom('rollout_devices')
        .select(['app', 'detail'])
        .where('rollout_id', '=', rolloutId)
        .where('device_id', '=', deviceId)
        .executeTakeFirstOrThrow();
      const logs = await readAppLogs(
        this.svc,
        deviceId,
        row.app,
        { stream: 'both', maxBytes: LOG_TAIL_BYTES },
        { system: 'rollout-engine' },
      );
      if (logs.text === '') return;
      const detail = { ...(JSON.parse(row.detail ?? '{}') as object), logTail: logs.text };
      await ctx.db
        .updateTable('rollout_devices')
        .set({ detail: JSON.stringify(detail) })
        .where('rollout_id', '=', rolloutId)
        .where('device_id', '=', deviceId)
        .where('phase', '=', 'failed')
        .execute();
    } catch (err) {
      ctx.log.debug({ err, deviceId, rolloutId }, 'no log tail for a failed rollout device');
    }
  }

  /**
   * Moves in-flight devices (all, or `only` these) on from their reports; the soak gate. Returns how
   * many left the in-flight phases.
   */
  async #refresh(
    trx: Db,
    row: RolloutRow,
    tally: Tally,
    now: Date,
    post: AfterCommit,
    only?: readonly string[],
  ): Promise<number> {
    if (only === undefined) return this.#refreshDevices(trx, row, tally, now, post);
    let settled = 0;
    for (let i = 0; i < only.length; i += REPORTED_CHUNK)
      settled += await this.#refreshDevices(trx, row, tally, now, post, only.slice(i, i + REPORTED_CHUNK));
    return settled;
  }

  async #refreshDevices(
    trx: Db,
    row: RolloutRow,
    tally: Tally,
    now: Date,
    post: AfterCommit,
    only?: readonly string[],
  ): Promise<number> {
    const { ctx } = this.svc;
    let settled = 0;
    let query = trx
      .selectFrom('rollout_devices as rd')
      .innerJoin('devices as d', 'd.id', 'rd.device_id')
      .leftJoin('device_apps as da', (join) =>
        join.onRef('da.device_id', '=', 'rd.device_id').onRef('da.app', '=', 'rd.app'),
      )
      .select([
        'rd.device_id',
        'rd.wave',
        'rd.phase',
        'rd.retries',
        'rd.assigned_at',
        'rd.soak_until',
        'rd.soak_restarts',
        'd.status',
        'd.last_seen_at',
        'da.desired',
        'da.current',
        'da.rollout',
        'da.phase as update_phase',
        'da.error',
        'da.process_status',
        'da.bytes_done',
      ])
      .where('rd.rollout_id', '=', row.id)
      .where('rd.phase', 'in', [...IN_FLIGHT])
      // Only the devices the loop below may move on: soaking ones (the soak's clock), and those whose
      // device or update says something the rollout's phase does not show yet. Most devices of a
      // large rollout are waiting for their agent at any moment: the database passes over them.
      .where((eb) =>
        eb.or([
          eb('rd.phase', '=', 'soaking'),
          eb('d.status', '!=', 'accepted'),
          eb('da.rollout', 'is distinct from', eb.ref('rd.rollout_id')),
          eb('da.phase', 'in', ['failed', 'rolled-back', 'committed']),
          eb.and([
            eb('da.phase', '=', 'assigned'),
            eb('da.current', 'is not distinct from', eb.ref('da.desired')),
          ]),
          eb.and([eb('da.phase', '=', 'assigned'), eb('rd.phase', '!=', 'notified')]),
          eb.and([eb('da.phase', 'in', DOWNLOAD_PHASES), eb('rd.phase', '!=', 'downloading')]),
          eb.and([eb('da.phase', 'in', INSTALL_PHASES), eb('rd.phase', '!=', 'installing')]),
        ]),
      );
    if (only !== undefined) query = query.where(idIn(ctx.dialect, 'rd.device_id', only));
    const devices = await query.execute();
    if (devices.length === 0) return 0;
    const iso = now.toISOString();
    const { presence } = this.svc.devices;
    const offlineBefore = new Date(now.getTime() - ctx.config.offlineAfterMs).toISOString();
    // The changes, grouped by what they set: devices of a pass mostly move alike (to `installing`,
    // to `succeeded` with the same install time as the rest of their batch), one statement each.
    const changes = new Map<string, { values: Record<string, unknown>; ids: string[] }>();
    const change = (deviceId: string, values: Record<string, unknown>) => {
      const key = JSON.stringify(values);
      const group = changes.get(key);
      if (group) group.ids.push(deviceId);
      else changes.set(key, { values, ids: [deviceId] });
    };
    for (const d of devices) {
      const set = async (values: Record<string, unknown>) => {
        if (values.phase !== undefined) {
          const to = values.phase as RolloutPhase;
          if (!IN_FLIGHT.includes(to)) settled++;
          tally.move(d.wave, d.phase as RolloutPhase, to);
        }
        change(d.device_id, { ...values, since: iso });
        return Promise.resolve();
      };
      /**
       * `retryable`: assigning the same release again can help (the update failed before the
       * switch: a download, the disk). A release the agent rolled back is held by it, and one that
       * committed is installed already: only another release moves those on.
       */
      const fail = async (reason: string, message: string | null, retryable = false) => {
        const detail = JSON.stringify({ ...(message !== null && { message }), retryable });
        if (retryable && d.retries < row.retry) {
          await set({
            phase: 'pending',
            reason,
            detail,
            retries: d.retries + 1,
            next_attempt_at: new Date(now.getTime() + retryDelayMs(d.retries)).toISOString(),
            soak_until: null,
            soak_restarts: null,
          });
          return;
        }
        await set({ phase: 'failed', reason, detail });
        post.events.push({
          type: 'rollout.device.failed',
          rolloutId: row.id,
          deviceId: d.device_id,
          wave: d.wave,
          reason,
        });
      };
      const succeed = async (values: Record<string, unknown> = {}) => {
        await set({ ...values, phase: 'succeeded', reason: null });
        post.events.push({
          type: 'rollout.device.succeeded',
          rolloutId: row.id,
          deviceId: d.device_id,
          wave: d.wave,
        });
      };
      if (d.rollout !== row.id) {
        // Another deployment (or rollout) replaced this assignment.
        await set({ phase: 'cancelled', reason: 'superseded', active: 0 });
        continue;
      }
      if (d.status !== 'accepted') {
        await fail(`device-${d.status}`, null);
        continue;
      }
      const process = d.process_status === null ? null : (JSON.parse(d.process_status) as AppProcessStatus);
      if (d.phase !== 'soaking') {
        if (d.update_phase === 'failed' || d.update_phase === 'rolled-back') {
          const error = d.error === null ? null : (JSON.parse(d.error) as { code: string; message: string });
          await fail(error?.code ?? d.update_phase, error?.message ?? null, d.update_phase === 'failed');
          continue;
        }
        // Committed — or assigned a release the device already runs (the agent has nothing to do).
        if ((d.update_phase === 'committed' || d.update_phase === 'assigned') && d.current === d.desired) {
          const installMs =
            d.assigned_at === null ? null : Math.max(0, now.getTime() - Date.parse(d.assigned_at));
          if (row.soak_seconds === 0) {
            await succeed({ install_ms: installMs });
            continue;
          }
          await set({
            phase: 'soaking',
            reason: null,
            install_ms: installMs,
            soak_until: new Date(now.getTime() + row.soak_seconds * 1000).toISOString(),
            soak_restarts: process?.restarts ?? 0,
          });
          continue;
        }
        const next = phaseOfUpdate(d.update_phase);
        if (next !== null && next !== d.phase) await set({ phase: next });
        continue;
      }
      // Soaking: the release must stay, run, not crash-loop, and the device must stay in touch.
      if (d.current !== d.desired) {
        await fail('rolled-back', `the device went back to ${d.current ?? 'no release'} during the soak`);
        continue;
      }
      if (process !== null) {
        const base = d.soak_restarts ?? 0;
        if (process.restarts < base) {
          // The agent restarted (its counts start from 0): measure from there.
          change(d.device_id, { soak_restarts: process.restarts });
        } else if (process.restarts - base >= CRASH_LOOP_RESTARTS) {
          const exit = process.lastExit;
          await fail(
            'crash-loop',
            `the app restarted ${process.restarts - base} times during the soak` +
              (exit ? ` (last exit: ${exit.signal ?? `code ${String(exit.code)}`} at ${exit.at})` : ''),
          );
          continue;
        } else if (process.state === 'stopped') {
          await fail('app-stopped', 'the app stopped during the soak and was not restarted');
          continue;
        }
      }
      // Last seen: what this process has not written yet (WebSocket pings, requests), else the row.
      const pending = presence.pendingLastSeen(d.device_id);
      const seen =
        pending !== undefined && (d.last_seen_at === null || pending > d.last_seen_at)
          ? pending
          : d.last_seen_at;
      if (seen === null || seen < offlineBefore) {
        await fail('heartbeat-lost', `no heartbeat since ${seen ?? 'never'}`);
        continue;
      }
      if (d.soak_until !== null && iso >= d.soak_until) await succeed();
    }
    for (const { values, ids } of changes.values())
      for (let i = 0; i < ids.length; i += REPORTED_CHUNK)
        await trx
          .updateTable('rollout_devices')
          .set(values)
          .where('rollout_id', '=', row.id)
          .where(idIn(ctx.dialect, 'device_id', ids.slice(i, i + REPORTED_CHUNK)))
          .execute();
    return settled;
  }

  /** Devices that match the filter now and are in no active rollout of the app join the current wave. */
  async #addNew(trx: Db, row: RolloutRow, tally: Tally, now: Date): Promise<number> {
    const ids = await matchingDevices(this.svc, trx, row.filter, row.app, now, row.id);
    if (ids.length === 0) return 0;
    await insertDevices(
      trx,
      row.id,
      row.app,
      ids.map((id) => ({ id, wave: row.current_wave })),
      now,
    );
    tally.add(row.current_wave, 'pending', ids.length);
    const sizes = JSON.parse(row.wave_sizes) as number[];
    sizes[row.current_wave] = (sizes[row.current_wave] ?? 0) + ids.length;
    row.wave_sizes = JSON.stringify(sizes);
    row.matched += ids.length;
    await trx
      .updateTable('rollouts')
      .set({ wave_sizes: row.wave_sizes, matched: row.matched, updated_at: now.toISOString() })
      .where('id', '=', row.id)
      .execute();
    return ids.length;
  }

  /** The gates: failure threshold, success threshold, approval, completion. */
  async #gate(trx: Db, row: RolloutRow, tally: Tally, now: Date, post: AfterCommit): Promise<void> {
    const sizes = JSON.parse(row.wave_sizes) as number[];
    const iso = now.toISOString();
    const update = async (values: Partial<RolloutRow>, event: RolloutEvent) => {
      Object.assign(row, values, { updated_at: iso });
      await trx
        .updateTable('rollouts')
        .set({ ...values, updated_at: iso })
        .where('id', '=', row.id)
        .execute();
      // The engine's transitions are audited like the operators' (actor: the system).
      const { type, rolloutId: _id, ...details } = event;
      await this.svc.ctx.audit.record(
        {
          actorType: 'system',
          actorId: 'rollout-engine',
          action: type,
          subjectType: 'rollout',
          subjectId: row.id,
          details,
        },
        trx,
      );
      post.events.push(event);
    };
    for (let w = 0; w <= row.current_wave; w++) {
      const c = tally.wave(w);
      const size = (sizes[w] ?? 0) - c.cancelled;
      // Failures an operator resumed past no longer count against the threshold.
      const failed = c.failed - tally.acknowledged(w);
      if (size <= 0 || failed <= 0) continue;
      const rate = (failed * 100) / size;
      if (rate > Number(row.max_failure)) {
        const reason =
          `failure threshold: ${failed} of ${size} devices of wave ${w + 1} failed ` +
          `(${round(rate)}% > ${Number(row.max_failure)}%)`;
        await update(
          { state: 'paused', paused_reason: reason },
          { type: 'rollout.paused', rolloutId: row.id, reason },
        );
        return;
      }
    }
    for (;;) {
      const cw = row.current_wave;
      const c = tally.wave(cw);
      // Failures an operator resumed past are left out of the share, like the cancelled devices.
      const size = (sizes[cw] ?? 0) - c.cancelled - tally.acknowledged(cw);
      const succeeded = c.succeeded;
      const open = c.pending + c.notified + c.downloading + c.installing + c.soaking;
      if (size > 0 && (succeeded * 100) / size < Number(row.min_success)) {
        if (open === 0) {
          const reason =
            `success threshold: ${succeeded} of ${size} devices of wave ${cw + 1} succeeded ` +
            `(${round((succeeded * 100) / size)}% < ${Number(row.min_success)}%)`;
          await update(
            { state: 'paused', paused_reason: reason },
            { type: 'rollout.paused', rolloutId: row.id, reason },
          );
        }
        return;
      }
      if (cw + 1 < sizes.length) {
        if (row.approve_waves === 1 && row.approved_wave < cw + 1) {
          await update(
            { state: 'waiting-approval', paused_reason: `wave ${cw + 2} waits for an approval` },
            { type: 'rollout.waiting-approval', rolloutId: row.id, wave: cw + 1 },
          );
          return;
        }
        await update(
          { current_wave: cw + 1, paused_reason: null },
          { type: 'rollout.wave.started', rolloutId: row.id, wave: cw + 1, size: sizes[cw + 1] ?? 0 },
        );
        continue;
      }
      if (tally.open() > 0 || row.include_new === 1) return;
      await trx.updateTable('rollout_devices').set({ active: 0 }).where('rollout_id', '=', row.id).execute();
      await update(
        { state: 'completed', paused_reason: null },
        { type: 'rollout.completed', rolloutId: row.id },
      );
      return;
    }
  }

  /** Assigns the devices whose wave has started and whose retry delay is over, inside the window. */
  async #assignDue(trx: Db, row: RolloutRow, tally: Tally, now: Date, post: AfterCommit): Promise<void> {
    if (row.window !== null && !windowOpen(parseWindow(row.window), now)) return;
    const iso = now.toISOString();
    const due = await trx
      .selectFrom('rollout_devices')
      .select(['device_id', 'wave'])
      .where('rollout_id', '=', row.id)
      .where('phase', '=', 'pending')
      .where('wave', '<=', row.current_wave)
      .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', iso)]))
      .orderBy('device_id')
      // Devices assigned per transaction: `deployBatchSize`, as a deployment's batches (two
      // statements each); a tick with more to do runs again at once.
      .limit(this.svc.ctx.config.deployBatchSize)
      .execute();
    if (due.length === 0) return;
    const ids = due.map((d) => d.device_id);
    const assigned = await assignDevicesInTransaction(
      this.svc.ctx,
      trx,
      ids,
      row.app,
      row.target_path,
      row.id,
    );
    const done = new Set(assigned.map((a) => a.deviceId));
    const gone = ids.filter((id) => !done.has(id));
    for (const d of due) tally.move(d.wave, 'pending', done.has(d.device_id) ? 'notified' : 'failed');
    if (assigned.length > 0)
      await trx
        .updateTable('rollout_devices')
        .set({ phase: 'notified', since: iso, assigned_at: iso, next_attempt_at: null })
        .where('rollout_id', '=', row.id)
        .where('device_id', 'in', [...done])
        .execute();
    if (gone.length > 0)
      await trx
        .updateTable('rollout_devices')
        .set({ phase: 'failed', reason: 'device-not-accepted', since: iso })
        .where('rollout_id', '=', row.id)
        .where('device_id', 'in', gone)
        .execute();
    post.assigned.push(...assigned);
    post.assignedTo = { app: row.app, targetPath: row.target_path, rollout: row.id };
    post.more = due.length === this.svc.ctx.config.deployBatchSize;
  }
}

/**
 * `column` in a set of ids passed as one parameter: the statement's text is the same for 1 id or
 * 500, and building it does not walk every id (the passes over reports run several times a second).
 */
function idIn(dialect: Dialect, column: string, ids: readonly string[]): Expression<SqlBool> {
  if (dialect === 'sqlite')
    return sql<SqlBool>`${sql.ref(column)} IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`;
  return sql<SqlBool>`${sql.ref(column)} = ANY(${[...ids]}::text[])`;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/**
 * Accepted devices the filter selects now that are in no active rollout of the app (and not yet in
 * `exceptRollout`), in id order.
 */
export async function matchingDevices(
  svc: DeployServices,
  db: Db,
  filter: string,
  app: string,
  now: Date,
  exceptRollout?: string,
): Promise<string[]> {
  const where = compileFilter(filter, {
    dialect: svc.ctx.dialect,
    now,
    offlineAfterMs: svc.ctx.config.offlineAfterMs,
    onlineIds: svc.devices.presence.onlineIds(),
  });
  let query = db
    .selectFrom('devices')
    .select('id')
    .where('status', '=', 'accepted')
    .where(where)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('rollout_devices as rd')
            .select('rd.device_id')
            .whereRef('rd.device_id', '=', 'devices.id')
            .where('rd.app', '=', app)
            .where('rd.active', '=', 1),
        ),
      ),
    );
  if (exceptRollout !== undefined)
    query = query.where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('rollout_devices as rx')
            .select('rx.device_id')
            .whereRef('rx.device_id', '=', 'devices.id')
            .where('rx.rollout_id', '=', exceptRollout),
        ),
      ),
    );
  const rows = await query.orderBy('id').execute();
  return rows.map((r) => r.id);
}

export async function insertDevices(
  trx: Db,
  rolloutId: string,
  app: string,
  devices: readonly { id: string; wave: number }[],
  now: Date,
): Promise<void> {
  const iso = now.toISOString();
  for (let i = 0; i < devices.length; i += INSERT_CHUNK)
    await trx
      .insertInto('rollout_devices')
      .values(
        devices.slice(i, i + INSERT_CHUNK).map((d) => ({
          rollout_id: rolloutId,
          device_id: d.id,
          app,
          wave: d.wave,
          phase: 'pending',
          since: iso,
          retries: 0,
          active: 1,
        })),
      )
      .execute();
}
