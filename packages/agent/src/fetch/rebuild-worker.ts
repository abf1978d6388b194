/**
 * A worker-thread module (node-kit's WorkerPool, see rebuild-pool.ts): runs one `runRebuildJob` per
 * task with buffers kept between tasks of the same thread, dropped when the pool says so on its
 * release channel. A base-changed payload moves back.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { poolWorkerData, transferring } from '@flotilla/node-kit';
import { RebuildBuffers, runRebuildJob } from './rebuild-job.js';
import type { RebuildJob, RebuildOutcome } from './rebuild-job.js';

let buffers = new RebuildBuffers();

const release = new BroadcastChannel(poolWorkerData<{ releaseChannel: string }>().releaseChannel);
release.onmessage = () => {
  buffers = new RebuildBuffers();
};
release.unref();

export default function rebuildTask(job: RebuildJob): RebuildOutcome {
  let outcome: RebuildOutcome;
  try {
    outcome = runRebuildJob(job, buffers);
  } catch (error) {
    outcome = {
      kind: 'error',
      code: 'FLT_INTERNAL',
      message: error instanceof Error ? error.message : String(error),
    };
  }
  return outcome.kind === 'base-changed' ? transferring(outcome, outcome.payload) : outcome;
}
