import { cpus, totalmem } from 'node:os';

/** One line naming the machine and runtime, printed with every set of figures. */
export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${new Date().toISOString().slice(0, 10)} · ${cpu} · ${cpus().length} cores · ${Math.round(totalmem() / 2 ** 30)} GiB · Node ${process.version}`;
}

/** Runs `fn` `runs` times and returns the median duration in seconds. */
export function medianSeconds(runs: number, fn: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export function mbPerSecond(bytes: number, seconds: number): string {
  return (bytes / 1e6 / seconds).toFixed(0);
}
