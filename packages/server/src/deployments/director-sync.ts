/**
 * Keeps each device's director metadata saying what its `device_apps` rows say. The database is
 * the truth: an assignment commits `device_apps` with `devices.director_pending` set, then the
 * director is re-signed from the committed rows and the marker cleared. A server stopped between
 * those steps re-signs the marked devices at its next start (`repairPending`), and before serving
 * a device's director metadata the server checks it against the rows once per state version
 * (`beforeRead`), so a replica also catches up with assignments another replica made.
 */
import type { ServerContext } from '../context.js';
import type { SecretVault } from '../secrets/index.js';
import { sealSecretsForDevice } from '../secrets/index.js';
import type { ReleaseSecretsRow } from '../secrets/service.js';
import { crashPoint } from '../test-hooks.js';
import type { DirectorAssignment, DirectorRepository } from '../tuf/index.js';
import { KeyedSerialQueue } from '@flotilla/node-kit';
import { sql } from 'kysely';
import { Coalescer } from '../db/coalesce.js';

export interface DirectorSyncOptions {
  ctx: ServerContext;
  director: DirectorRepository;
  vault: SecretVault;
}

export class DirectorSync {
  /** Per device, the state version this process last found the director agreeing at. */
  readonly #agreedAt = new Map<string, number>();
  /** This process's director files are read, compared and rewritten one device at a time. */
  readonly #local = new KeyedSerialQueue();

  /** The devices' rows that syncs read, several devices in one statement. */
  readonly #reads = new Coalescer<string, SyncRow[]>((ids) => this.#read(ids));
  /** Markers cleared, several devices in one statement. */
  readonly #clears = new Coalescer<{ deviceId: string; stateVersion: number }, void>((items) =>
    this.#clear(items),
  );

  constructor(private readonly opts: DirectorSyncOptions) {}

  /** Per device (in the order given): its version and marker with its assigned rows, none of them when nothing is assigned. */
  async #read(deviceIds: readonly string[]): Promise<SyncRow[][]> {
    const rows = await this.opts.ctx.db
      .selectFrom('devices as d')
      .leftJoin('device_apps as a', (join) =>
        join.onRef('a.device_id', '=', 'd.id').on('a.desired', 'is not', null),
      )
      .leftJoin('releases as r', 'r.target_path', 'a.desired')
      .select([
        'd.id',
        'd.state_version',
        'd.director_pending',
        'a.desired',
        'a.rollout',
        'r.app as release_app',
        'r.version as release_version',
        'r.secrets as release_secrets',
      ])
      .where('d.id', 'in', [...new Set(deviceIds)])
      .orderBy('d.id')
      .orderBy('a.app')
      .execute();
    const byDevice = new Map<string, SyncRow[]>();
    for (const row of rows) {
      const list = byDevice.get(row.id);
      if (list) list.push(row);
      else byDevice.set(row.id, [row]);
    }
    return deviceIds.map((id) => byDevice.get(id) ?? []);
  }

  /** Clears each device's marker up to the version its sync read (an assignment committed since keeps it). */
  async #clear(items: readonly { deviceId: string; stateVersion: number }[]): Promise<void[]> {
    const { ctx } = this.opts;
    if (ctx.dialect === 'postgres') {
      // The rows locked in id order, as assignments lock them (lockAcceptedIds): several rows in
      // one statement must not take them in another order and deadlock with an assignment.
      await sql`
        UPDATE devices SET director_pending = NULL
        FROM (
          SELECT d.id, c.version
          FROM devices AS d
          JOIN unnest(${items.map((i) => i.deviceId)}::text[], ${items.map((i) => i.stateVersion)}::bigint[]) AS c(id, version)
            ON d.id = c.id
          ORDER BY d.id
          FOR UPDATE OF d
        ) AS l
        WHERE devices.id = l.id AND devices.director_pending <= l.version`.execute(ctx.db);
    } else {
      for (const { deviceId, stateVersion } of items)
        await ctx.db
          .updateTable('devices')
          .set({ director_pending: null })
          .where('id', '=', deviceId)
          .where('director_pending', '<=', stateVersion)
          .execute();
    }
    return items.map(() => undefined);
  }

  /**
   * Re-signs the device's director targets from its committed `device_apps` if they differ, then
   * clears the device's marker up to the state version read. Returns whether it re-signed.
   * `atVersion`: the device's state version the caller needs reflected; nothing is done when a
   * sync of this process already agreed at that version or a later one (the assignment's own
   * re-sign and the device's first read, which races it, then cost one sync, not two).
   */
  sync(deviceId: string, atVersion?: number): Promise<boolean> {
    return this.#local.run(deviceId, async () => {
      if (atVersion !== undefined && (this.#agreedAt.get(deviceId) ?? -1) >= atVersion) return false;
      const { ctx, director } = this.opts;
      // One statement (one snapshot, one round trip) for this device and the others' syncs that
      // came meanwhile: the version and marker with the assigned rows.
      const rows = await this.#reads.run(deviceId);
      const stateVersion = rows[0] === undefined ? undefined : Number(rows[0].state_version);
      const pending = rows[0]?.director_pending ?? null;
      const assigned = rows.filter((r) => r.desired !== null);
      const assignments = assigned.map((r) => ({
        path: r.desired!,
        ...(r.rollout !== null && { rollout: r.rollout }),
      }));
      // The assigned releases' rows (for their secrets), read with the rest.
      const releases = new Map<string, ReleaseSecretsRow>();
      for (const r of assigned)
        if (r.release_app !== null && r.release_version !== null && r.release_secrets !== null)
          releases.set(r.desired!, {
            app: r.release_app,
            version: r.release_version,
            target_path: r.desired!,
            secrets: r.release_secrets,
          });
      if (stateVersion === undefined) return false;
      const signed = await director.targets(deviceId);
      const agrees =
        signed !== undefined &&
        sameAssignments(
          Object.values(signed.signed.targets).map((t) => ({
            path: t.path,
            rollout: typeof t.custom.rollout === 'string' ? t.custom.rollout : undefined,
          })),
          assignments,
        );
      if (!agrees) {
        // Each release's secrets sealed to this device alone, inside the target its director signs.
        const sealed: DirectorAssignment[] = [];
        for (const a of assignments) {
          const sealedSecrets = await sealSecretsForDevice(
            ctx,
            this.opts.vault,
            deviceId,
            a.path,
            releases.get(a.path),
          );
          sealed.push(sealedSecrets === undefined ? a : { ...a, sealedSecrets });
        }
        await director.assign(deviceId, sealed);
        crashPoint('assignment.after-sign');
      }
      // Cleared only up to the version read: an assignment committed since keeps its marker.
      if (pending !== null && Number(pending) <= stateVersion)
        await this.#clears.run({ deviceId, stateVersion });
      this.#agreedAt.set(deviceId, stateVersion);
      return !agrees;
    });
  }

  /**
   * Before a device's director metadata is served: compares it with `device_apps` unless this
   * process already did at the device's current state version. `stateVersion`: the version the
   * request's device token check read just now (read here when not given, e.g. for an operator).
   */
  async beforeRead(deviceId: string, stateVersion?: number): Promise<void> {
    let version = stateVersion;
    if (version === undefined) {
      const row = await this.opts.ctx.db
        .selectFrom('devices')
        .select('state_version')
        .where('id', '=', deviceId)
        .executeTakeFirst();
      if (row === undefined) return;
      version = Number(row.state_version);
    }
    if (this.#agreedAt.get(deviceId) === version) return;
    await this.sync(deviceId, version);
  }

  /** At start: re-signs every device an assignment marked and no re-sign cleared (a crash between). */
  async repairPending(): Promise<number> {
    const rows = await this.opts.ctx.db
      .selectFrom('devices')
      .select('id')
      .where('director_pending', 'is not', null)
      .orderBy('id')
      .execute();
    let resigned = 0;
    for (const { id } of rows) if (await this.sync(id)) resigned++;
    if (rows.length > 0)
      this.opts.ctx.log.warn(
        { devices: rows.length, resigned },
        'director metadata of devices whose assignment was interrupted brought up to date',
      );
    return resigned;
  }
}

/** A row of a sync's read: the device's, with one assigned app's (nulls when none). */
interface SyncRow {
  id: string;
  state_version: number | string;
  director_pending: number | null;
  desired: string | null;
  rollout: string | null;
  release_app: string | null;
  release_version: string | null;
  release_secrets: string | null;
}

interface Assigned {
  path: string;
  rollout?: string | undefined;
}

function sameAssignments(a: readonly Assigned[], b: readonly Assigned[]): boolean {
  const key = (x: Assigned) => `${x.path}\u0000${x.rollout ?? ''}`;
  const left = a.map(key).sort();
  const right = b.map(key).sort();
  return left.length === right.length && left.every((k, i) => k === right[i]);
}
