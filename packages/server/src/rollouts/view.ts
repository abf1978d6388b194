/** Rollout rows as the API shows them: waves with counts per phase, statistics, device pages. */
import type { Rollout, RolloutDevice, RolloutPhase } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db } from '../context.js';
import type { RolloutDevicesTable, RolloutsTable } from '../db/schema.js';
import { Tally } from './counts.js';

export type RolloutRow = Selectable<RolloutsTable>;
export type RolloutDeviceRow = Selectable<RolloutDevicesTable>;

export const PHASES: readonly RolloutPhase[] = [
  'pending',
  'notified',
  'downloading',
  'installing',
  'soaking',
  'succeeded',
  'failed',
  'cancelled',
];

/**
 * The install time at percentile `p` of the rollout's `n` devices that committed (nearest rank): one
 * value read, not all of them (the API is polled; a rollout may have 10,000 devices).
 */
async function percentile(db: Db, rolloutId: string, n: number, p: number): Promise<number | null> {
  if (n === 0) return null;
  const i = Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
  const row = await db
    .selectFrom('rollout_devices')
    .select('install_ms')
    .where('rollout_id', '=', rolloutId)
    .where('install_ms', 'is not', null)
    .orderBy('install_ms')
    .limit(1)
    .offset(i)
    .executeTakeFirst();
  return row?.install_ms === undefined || row.install_ms === null ? null : Number(row.install_ms);
}

export async function toRollout(db: Db, row: RolloutRow): Promise<Rollout> {
  const specs = JSON.parse(row.waves) as string[];
  const sizes = JSON.parse(row.wave_sizes) as number[];
  // Kept in the row with every change of phase (counted from the devices for an older rollout).
  const counts = await Tally.of(db, row);
  const installs = await db
    .selectFrom('rollout_devices')
    .select((eb) => eb.fn.count<number | string>('install_ms').as('n'))
    .where('rollout_id', '=', row.id)
    .executeTakeFirstOrThrow();
  const committed = Number(installs.n);
  const failures = await db
    .selectFrom('rollout_devices')
    .select(['reason', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('rollout_id', '=', row.id)
    .where('phase', '=', 'failed')
    .groupBy('reason')
    .execute();
  const finished = row.state === 'completed' || row.state === 'aborted';
  return {
    id: row.id,
    app: row.app,
    version: row.version,
    targetPath: row.target_path,
    filter: row.filter,
    state: row.state,
    currentWave: row.current_wave,
    matched: row.matched,
    minSuccess: Number(row.min_success),
    maxFailure: Number(row.max_failure),
    soakSeconds: row.soak_seconds,
    approveWaves: row.approve_waves === 1,
    window: row.window,
    includeNewDevices: row.include_new === 1,
    retry: row.retry,
    pausedReason: row.paused_reason,
    waves: specs.map((spec, index) => ({
      index,
      spec,
      size: sizes[index] ?? 0,
      state:
        index < row.current_wave || (finished && index === row.current_wave)
          ? 'done'
          : index === row.current_wave
            ? 'running'
            : 'waiting',
      counts: counts.wave(index),
    })),
    stats: {
      installP50Ms: await percentile(db, row.id, committed, 50),
      installP95Ms: await percentile(db, row.id, committed, 95),
      failuresByReason: failures
        .map((f) => ({ reason: f.reason ?? 'unknown', count: Number(f.n) }))
        .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason)),
    },
    createdAt: row.created_at,
    createdBy: row.created_by,
    updatedAt: row.updated_at,
  };
}

export function toRolloutDevice(row: RolloutDeviceRow): RolloutDevice {
  return {
    deviceId: row.device_id,
    wave: row.wave,
    phase: row.phase as RolloutPhase,
    reason: row.reason,
    retries: row.retries,
    since: row.since,
  };
}
