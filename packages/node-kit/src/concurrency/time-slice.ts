/**
 * Cooperative time slices for a loop over data already at hand. A loop that only awaits resolved
 * promises (a stream whose data is buffered, a callback that works synchronously) runs in
 * microtasks and never lets the event loop turn: the agent's reading of a 3 MB pack held its loop
 * for 230 ms, and the Docker Engine's connection to the agent's loopback registry waited all that
 * time to be accepted (bench/README.md "containers").
 */
import { setImmediate as immediate } from 'node:timers/promises';

/**
 * A pause to await at each turn of such a loop: it resolves at once until `sliceMs` have passed
 * since the last time the event loop turned, then lets it turn (`setImmediate`: pending I/O runs
 * first) and begins a new slice.
 */
export function timeSlices(sliceMs = 10): () => Promise<void> {
  let sliceStart = performance.now();
  return async () => {
    if (performance.now() - sliceStart < sliceMs) return;
    await immediate();
    sliceStart = performance.now();
  };
}
