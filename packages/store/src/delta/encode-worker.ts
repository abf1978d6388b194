/**
 * A worker-thread module (node-kit's WorkerPool): encodes one delta per task. Exported as
 * `@flotilla/store/delta-encode-worker`, so a caller run from its sources (tsx) finds it compiled.
 * Failures come back as `{ error }`: a rejected task means the worker itself failed.
 */
import { transferring } from '@flotilla/node-kit';
import { encodeDelta } from './zstd-delta.js';

export interface DeltaEncodeTask {
  base: Uint8Array;
  target: Uint8Array;
  level: number;
}

export type DeltaEncodeReply = { payload: Uint8Array } | { error: string };

export default function encodeDeltaTask(task: DeltaEncodeTask): DeltaEncodeReply {
  try {
    const payload = encodeDelta(task.base, task.target, { level: task.level });
    return transferring({ payload }, payload);
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}
