import { sha256Hex } from '@flotilla/node-kit';
import type { Facts } from '@flotilla/protocol';

/**
 * Facts that change all the time on a healthy machine. They are reported, but a change in them
 * alone does not trigger a report (and an audit entry on the server) every minute: they travel
 * with the next report, at the latest after `inventoryIntervalMs`.
 */
export const VOLATILE_FACTS: ReadonlySet<string> = new Set(['disk.free_bytes']);

/** A digest of the non-volatile facts that does not depend on the order they were collected in. */
export function factsHash(facts: Facts): string {
  const entries = Object.entries(facts)
    .filter(([name]) => !VOLATILE_FACTS.has(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return sha256Hex(JSON.stringify(entries));
}
