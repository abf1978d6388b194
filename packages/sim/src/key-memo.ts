/**
 * tuf-js turns a key's bytes into a Node.js `KeyObject` (`crypto.createPublicKey` on its DER form)
 * for every signature it checks; for thousands of simulated devices that verify the same few keys
 * this costs more than the signature checks themselves. A `KeyObject` is immutable and depends on
 * the key's bytes only, so the simulator keeps the ones it made, by their bytes: every signature
 * is still verified, as on a real device.
 *
 * Installed once per process by the fleet (it replaces `crypto.createPublicKey`, which tuf-js
 * calls through the module object); any other call passes through unchanged.
 */
import crypto from 'node:crypto';
import type { KeyObject, PublicKeyInput } from 'node:crypto';

/** Keys kept at most (a fleet's repositories use a handful; the map starts over when full). */
const MAX_KEYS = 256;
/** Larger DER keys (RSA) are rare in TUF metadata and not kept. */
const MAX_DER_BYTES = 256;

let installed = false;

/** Replaces `crypto.createPublicKey` with one that reuses the `KeyObject` of a DER SPKI key it saw. */
export function memoizePublicKeys(): void {
  if (installed) return;
  installed = true;
  const original = crypto.createPublicKey;
  const kept = new Map<string, KeyObject>();
  const memoized = (input: Parameters<typeof crypto.createPublicKey>[0]): KeyObject => {
    const der = derSpki(input);
    if (der === undefined) return original(input);
    const id = der.toString('base64');
    let key = kept.get(id);
    if (key === undefined) {
      key = original(input);
      if (kept.size >= MAX_KEYS) kept.clear();
      kept.set(id, key);
    }
    return key;
  };
  crypto.createPublicKey = memoized;
}

function derSpki(input: unknown): Buffer | undefined {
  if (typeof input !== 'object' || input === null || Buffer.isBuffer(input)) return undefined;
  const { key, format, type, encoding } = input as PublicKeyInput & { key?: unknown };
  if (format !== 'der' || type !== 'spki' || encoding !== undefined) return undefined;
  if (!Buffer.isBuffer(key) || key.length > MAX_DER_BYTES) return undefined;
  return key;
}
