/**
 * Where import jobs wait: in this process (the single-machine default) or in BullMQ on Redis,
 * where `flotilla gateway worker` processes anywhere take them. Either way the queue carries only
 * job ids; the job's state is in the database.
 */
import type { Logger } from 'pino';
import { runJob } from './runner.js';
import type { JobRunnerDeps } from './runner.js';

export interface JobQueue {
  /** Queues job `id`; queuing a job already queued is a no-op. */
  enqueue(id: string): Promise<void>;
  close(): Promise<void>;
}

/** Runs jobs in this process, `concurrency` at a time, retrying with exponential backoff. */
export class InProcessQueue implements JobQueue {
  private readonly waiting: { id: string; n: number }[] = [];
  private readonly known = new Set<string>();
  private active = 0;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly idle = new Set<() => void>();

  constructor(
    private readonly deps: JobRunnerDeps,
    private readonly log: Logger,
  ) {}

  enqueue(id: string): Promise<void> {
    if (this.closed || this.known.has(id)) return Promise.resolve();
    this.known.add(id);
    this.waiting.push({ id, n: 1 });
    this.pump();
    return Promise.resolve();
  }

  private pump(): void {
    while (!this.closed && this.active < this.deps.config.concurrency && this.waiting.length > 0) {
      const { id, n } = this.waiting.shift() as { id: string; n: number };
      this.active++;
      void this.attempt(id, n).finally(() => {
        this.active--;
        this.pump();
        if (this.active === 0) for (const done of this.idle) done();
      });
    }
  }

  private async attempt(id: string, n: number): Promise<void> {
    const final = n >= this.deps.config.attempts;
    try {
      await runJob(this.deps, id, final);
      this.known.delete(id);
    } catch {
      if (final || this.closed) {
        this.known.delete(id);
        return;
      }
      const delay = this.deps.config.backoffMs * 2 ** (n - 1);
      this.log.info({ job: id, attempt: n, retryInMs: delay }, 'import will be retried');
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.waiting.push({ id, n: n + 1 });
        this.pump();
      }, delay);
      this.timers.add(timer);
    }
  }

  /** Stops taking jobs and waits for those running (unfinished ones are re-queued at next start). */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.active === 0) return;
    await new Promise<void>((resolve) => this.idle.add(resolve));
  }
}
