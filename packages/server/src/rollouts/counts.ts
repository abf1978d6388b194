/**
 * A rollout's devices per wave and phase, kept in its row (`rollouts.counts`, migration 013) and
 * changed in the same transaction as the devices' phases, under the rollout's row lock: every
 * writer of `rollout_devices.phase` (the engine's ticks, `rollout create`, the operators' actions)
 * holds it. The gates and `rollout show` read them instead of counting the rollout's devices.
 */
import type { RolloutPhase, WaveCounts } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db } from '../context.js';
import type { RolloutsTable } from '../db/schema.js';

type RolloutRow = Selectable<RolloutsTable>;

export function emptyCounts(): WaveCounts {
  return {
    pending: 0,
    notified: 0,
    downloading: 0,
    installing: 0,
    soaking: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
  };
}

interface Stored {
  waves: WaveCounts[];
  /** Per wave, the failed devices an operator resumed past (`acknowledged`). */
  acknowledged: number[];
}

/** Counts the rollout's devices from their rows (a rollout without kept counts; tests). */
export async function countDevices(db: Db, rolloutId: string): Promise<Stored> {
  const rows = await db
    .selectFrom('rollout_devices')
    .select(['wave', 'phase', 'acknowledged', (eb) => eb.fn.countAll<number | string>().as('n')])
    .where('rollout_id', '=', rolloutId)
    .groupBy(['wave', 'phase', 'acknowledged'])
    .execute();
  const out: Stored = { waves: [], acknowledged: [] };
  for (const r of rows) {
    const n = Number(r.n);
    const counts = (out.waves[r.wave] ??= emptyCounts());
    counts[r.phase as RolloutPhase] += n;
    if (r.phase === 'failed' && r.acknowledged === 1)
      out.acknowledged[r.wave] = (out.acknowledged[r.wave] ?? 0) + n;
  }
  return out;
}

export class Tally {
  #dirty = false;

  private constructor(private readonly stored: Stored) {}

  /** A new rollout's: every device pending in its wave. */
  static ofSizes(sizes: readonly number[]): Tally {
    const t = new Tally({
      waves: sizes.map((n) => ({ ...emptyCounts(), pending: n })),
      acknowledged: [],
    });
    return t;
  }

  /** The counts kept in the row; for a row without, counted from its devices (and then kept). */
  static async of(db: Db, row: RolloutRow): Promise<Tally> {
    if (row.counts !== null) return new Tally(JSON.parse(row.counts) as Stored);
    const t = new Tally(await countDevices(db, row.id));
    t.#dirty = true;
    return t;
  }

  wave(w: number): WaveCounts {
    return this.stored.waves[w] ?? emptyCounts();
  }

  acknowledged(w: number): number {
    return this.stored.acknowledged[w] ?? 0;
  }

  /** Devices of any wave not yet ended: pending or in flight. */
  open(): number {
    let n = 0;
    for (const c of this.stored.waves)
      if (c) n += c.pending + c.notified + c.downloading + c.installing + c.soaking;
    return n;
  }

  /** Pending devices of the waves up to `wave` (some may wait for a retry's delay). */
  pendingUpTo(wave: number): number {
    let n = 0;
    for (let w = 0; w <= wave && w < this.stored.waves.length; w++) n += this.stored.waves[w]?.pending ?? 0;
    return n;
  }

  /** `n` devices of wave `w` joined in `phase` (n < 0: left it). */
  add(w: number, phase: RolloutPhase, n: number): void {
    if (n === 0) return;
    const waves = this.stored.waves;
    for (let i = waves.length; i <= w; i++) waves[i] = emptyCounts();
    waves[w]![phase] += n;
    this.#dirty = true;
  }

  move(w: number, from: RolloutPhase, to: RolloutPhase, n = 1): void {
    if (from === to || n === 0) return;
    this.add(w, from, -n);
    this.add(w, to, n);
  }

  acknowledge(w: number, n: number): void {
    if (n === 0) return;
    const acked = this.stored.acknowledged;
    for (let i = acked.length; i <= w; i++) acked[i] = 0;
    acked[w]! += n;
    this.#dirty = true;
  }

  toJSON(): string {
    // Holes (waves never counted) as empty counts: JSON has no holes.
    const waves = Array.from(this.stored.waves, (c) => c ?? emptyCounts());
    const acknowledged = Array.from(this.stored.acknowledged, (n) => n ?? 0);
    return JSON.stringify({ waves, acknowledged });
  }

  /** Writes the counts into the row if they changed (inside the transaction that changed them). */
  async save(trx: Db, row: RolloutRow): Promise<void> {
    if (!this.#dirty) return;
    row.counts = this.toJSON();
    await trx.updateTable('rollouts').set({ counts: row.counts }).where('id', '=', row.id).execute();
    this.#dirty = false;
  }
}
