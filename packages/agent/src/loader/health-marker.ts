/**
 * The agent's side of the loader's health window: once the agent has reached the server (a server
 * answer accepted it), it writes `{ pid }` to FLOTILLA_LOADER_HEALTH_FILE. Without a loader the
 * variable is unset and nothing is written.
 */
import { renameSync, writeFileSync } from 'node:fs';

let marked = false;

/** Called on each state the server answers with; writes the marker once per process. */
export function markReachedServer(env: NodeJS.ProcessEnv = process.env): void {
  const file = env.FLOTILLA_LOADER_HEALTH_FILE;
  if (marked || file === undefined || file === '') return;
  marked = true;
  try {
    // Written whole, then renamed into place: the loader polls the file and must never read half of it.
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify({ pid: process.pid, at: new Date().toISOString() }) + '\n');
    renameSync(temp, file);
  } catch {
    // The loader then judges the agent unhealthy and says so; nothing to do here.
  }
}
