import { sha256Hex } from '@flotilla/protocol';
import type { Facts } from '@flotilla/protocol';

/** A digest of the facts that does not depend on the order they were collected in. */
export function factsHash(facts: Facts): string {
  const entries = Object.entries(facts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return sha256Hex(JSON.stringify(entries));
}
