/**
 * The client that polls the app (bench/containers/run.ts `answers`), on a thread of its own: the
 * bench runs the agent in its own process, and a poller on the main thread would count the
 * agent's work after the start (health window, commit) into the app's answer time. A real
 * client of the app is another process; this thread stands for it, for both sides alike.
 */
import { parentPort, workerData } from 'node:worker_threads';

const { port, want, since } = workerData as { port: number; want: string; since: number };

for (;;) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
    if ((await res.text()).trim() === want) {
      parentPort?.postMessage({ ms: Date.now() - since });
      break;
    }
  } catch {
    // not up yet
  }
  if (Date.now() - since > 120_000) {
    parentPort?.postMessage({ error: `port ${port} never answered ${want}` });
    break;
  }
  await new Promise((r) => setTimeout(r, 10));
}
