/**
 * Where the fleet bench runs its simulated devices: in its own process (one `Fleet`), or split over
 * several child processes (`--sim-procs N`, `sim-child.ts`), each with its own open-files limit
 * (20,000 per process on the benchmark machine: one descriptor per device). Both answer the same
 * questions: counts, when the last device was told (`Date.now()`, one clock for all processes), CPU
 * seconds and memory.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fleet } from '@flotilla/sim';
import type { FleetOptions, FleetSummary } from '@flotilla/sim';

export type SimSpec = Omit<FleetOptions, 'onNotified' | 'logger' | 'random'>;

export interface Sims {
  start(): Promise<void>;
  summary(): FleetSummary;
  /** `Date.now()` of the last `state-changed` notice any device received (0: none yet). */
  lastNotifiedAt(): number;
  connected(timeoutMs: number): Promise<boolean>;
  /** CPU seconds (user + system) of the simulator processes so far. */
  cpuSeconds(): Promise<number>;
  /** Resident memory of the simulator processes, MB. */
  rssMb(): Promise<number>;
  stop(): Promise<void>;
}

/** utime + stime of a process in seconds (Linux /proc; USER_HZ is 100). */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident set size of a process in MB. */
export async function rssMbOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The devices in this process. */
export function inProcessSims(spec: SimSpec): Sims {
  let last = 0;
  const fleet = new Fleet({
    ...spec,
    onNotified: () => {
      last = Date.now();
    },
  });
  return {
    start: () => fleet.start(),
    summary: () => fleet.summary(),
    lastNotifiedAt: () => last,
    connected: (timeoutMs) => fleet.connected(timeoutMs),
    cpuSeconds: () => {
      const u = process.cpuUsage();
      return Promise.resolve((u.user + u.system) / 1e6);
    },
    rssMb: () => Promise.resolve(process.memoryUsage().rss / 1024 / 1024),
    stop: () => fleet.stop(),
  };
}

/** Messages from a child (sim-child.ts). */
export type ChildMessage =
  | { type: 'stats'; summary: FleetSummary; lastNotifiedAt: number }
  | { type: 'started' }
  | { type: 'failed'; message: string };

/** `procs` child processes, the devices split evenly; child k's identities live in `stateDir/k`. */
export function childSims(spec: SimSpec, procs: number): Sims {
  const childJs = join(dirname(fileURLToPath(import.meta.url)), 'sim-child.js');
  const children: { child: ChildProcess; summary: FleetSummary | null; last: number }[] = [];
  const perChild = Math.ceil(spec.devices / procs);
  const addresses = spec.localAddresses ?? [];
  for (let k = 0; k < procs; k++) {
    const devices = Math.min(perChild, spec.devices - k * perChild);
    if (devices <= 0) break;
    const child = fork(childJs, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const entry = { child, summary: null as FleetSummary | null, last: 0 };
    children.push(entry);
    // Each child gets its own share of the source addresses (one per 10,000 devices overall).
    const share = addresses.filter((_, i) => i % procs === k);
    child.send({
      type: 'spec',
      spec: {
        ...spec,
        devices,
        stateDir: join(spec.stateDir, String(k)),
        localAddresses: share.length > 0 ? share : addresses,
      },
    });
  }
  const waitFor = (type: 'started') =>
    Promise.all(
      children.map(
        ({ child }) =>
          new Promise<void>((resolve, reject) => {
            const onMessage = (m: ChildMessage) => {
              if (m.type === type) {
                child.off('message', onMessage);
                resolve();
              } else if (m.type === 'failed') reject(new Error(`simulator process: ${m.message}`));
            };
            child.on('message', onMessage);
            child.once('exit', (code) => reject(new Error(`simulator process exited (${code})`)));
          }),
      ),
    ).then(() => undefined);
  for (const entry of children)
    entry.child.on('message', (m: ChildMessage) => {
      if (m.type === 'stats') {
        entry.summary = m.summary;
        entry.last = m.lastNotifiedAt;
      }
    });
  const started = waitFor('started');
  started.catch(() => undefined);
  const summary = (): FleetSummary => {
    const parts = children.map((c) => c.summary).filter((s): s is FleetSummary => s !== null);
    const sum = (f: (s: FleetSummary) => number) => parts.reduce((a, s) => a + f(s), 0);
    const errors: Record<string, number> = {};
    for (const p of parts) for (const [k, v] of Object.entries(p.errors)) errors[k] = (errors[k] ?? 0) + v;
    return {
      devices: spec.devices,
      enrolled: sum((s) => s.enrolled),
      reused: sum((s) => s.reused),
      connected: sum((s) => s.connected),
      dropped: sum((s) => s.dropped),
      notified: sum((s) => s.notified),
      verified: sum((s) => s.verified),
      installing: sum((s) => s.installing),
      committed: sum((s) => s.committed),
      failed: sum((s) => s.failed),
      crashLooping: sum((s) => s.crashLooping),
      restarts: sum((s) => s.restarts),
      reports: sum((s) => s.reports),
      committedReported: sum((s) => s.committedReported),
      failedReported: sum((s) => s.failedReported),
      errors,
    };
  };
  return {
    start: () => started,
    summary,
    lastNotifiedAt: () => Math.max(0, ...children.map((c) => c.last)),
    async connected(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (summary().connected < spec.devices) {
        if (Date.now() > deadline) return false;
        await sleep(100);
      }
      return true;
    },
    async cpuSeconds() {
      let total = 0;
      for (const { child } of children) total += await cpuSecondsOf(child.pid!);
      return total;
    },
    async rssMb() {
      let total = 0;
      for (const { child } of children) total += await rssMbOf(child.pid!);
      return total;
    },
    async stop() {
      await Promise.all(
        children.map(({ child }) =>
          child.exitCode !== null
            ? Promise.resolve()
            : new Promise<void>((resolve) => {
                child.once('exit', () => resolve());
                child.send({ type: 'stop' });
              }),
        ),
      );
    },
  };
}
