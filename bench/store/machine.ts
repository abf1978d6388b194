import { cpus, totalmem } from 'node:os';

/** One line naming the machine and runtime, printed with every set of figures. */
export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${new Date().toISOString().slice(0, 10)} · ${cpu} · ${cpus().length} cores · ${Math.round(totalmem() / 2 ** 30)} GiB · Node ${process.version}`;
}

/**
 * Runs `fn` `runs` times and returns the shortest duration in seconds: on a shared machine the
 * fastest run is the one least disturbed by other processes.
 */
export function bestSeconds(runs: number, fn: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  return Math.min(...times);
}

export function mbPerSecond(bytes: number, seconds: number): string {
  return (bytes / 1e6 / seconds).toFixed(0);
}
