/**
 * tuf-js turns a key's bytes into a Node.js `KeyObject` (`crypto.createPublicKey` on its DER form)
 * for every signature it checks; for thousands of simulated devices that verify the same few keys
 * this costs more than the signature checks themselves. A `KeyObject` is immutable and depends on
 * the key's bytes only, so the simulator keeps the ones it made, by their bytes: every signature
 * is still verified, as on a real device.
 *
 * Installed once per process by the fleet (it replaces `crypto.createPublicKey`, which tuf-js
 * calls through the module object); any other call passes through unchanged. It also replaces
 * `crypto.verify` so that a check identical to one that succeeded before in this process (same
 * key, same signature, same signed bytes) is not repeated: the image repository's metadata and the
 * director's root are the same bytes for every device.
 */
import crypto from 'node:crypto';
import type { KeyObject, PublicKeyInput } from 'node:crypto';

/** Keys kept at most (a fleet's repositories use a handful; the map starts over when full). */
const MAX_KEYS = 256;
/** Larger DER keys (RSA) are rare in TUF metadata and not kept. */
const MAX_DER_BYTES = 256;

let installed = false;

/** Every memoized KeyObject, by its DER bytes (base64). */
const kept = new Map<string, KeyObject>();
/** The memoized KeyObjects: only checks with one of them are kept. */
const keptKeys = new WeakSet<KeyObject>();

/** Replaces `crypto.createPublicKey` with one that reuses the `KeyObject` of a DER SPKI key it saw. */
export function memoizePublicKeys(): void {
  if (installed) return;
  installed = true;
  const original = crypto.createPublicKey;
  const memoized = (input: Parameters<typeof crypto.createPublicKey>[0]): KeyObject => {
    const der = derSpki(input);
    if (der === undefined) return original(input);
    const id = der.toString('base64');
    let key = kept.get(id);
    if (key === undefined) {
      key = original(input);
      if (kept.size >= MAX_KEYS) kept.clear();
      kept.set(id, key);
      keptKeys.add(key);
    }
    return key;
  };
  crypto.createPublicKey = memoized;
  memoizeVerifications();
}

/**
 * Successful checks kept, by signature, with the signed bytes and the key they were checked with;
 * the least recently used goes first when full. Each device's own director metadata adds one entry
 * (a few hundred bytes) that is rarely met again; the image repository's few are met by every
 * device and so stay.
 */
const verified = new Map<string, { key: KeyObject; data: Buffer }>();
const MAX_VERIFIED = 256;

/**
 * A check whose key (one memoized here), signature and signed bytes are identical to those of one
 * that succeeded before returns that success (bytes compared in full): the image repository's
 * metadata and the director's root are the same for every simulated device, and a signature check
 * of the same bytes with the same key comes out the same. Anything else (a signature not seen,
 * other bytes, another key, a failed check) is verified for real, and a failure is never kept.
 */
function memoizeVerifications(): void {
  type Verify = (...args: unknown[]) => boolean;
  const original = crypto.verify as unknown as Verify;
  const memoized = (...args: unknown[]): boolean => {
    const [algorithm, data, keyInput, signature, callback] = args;
    const key = keyObjectOf(keyInput);
    if (
      callback !== undefined ||
      (algorithm !== undefined && algorithm !== null) ||
      key === undefined ||
      !keptKeys.has(key) ||
      !Buffer.isBuffer(data) ||
      !Buffer.isBuffer(signature)
    )
      return original(...args);
    const id = signature.toString('base64');
    const seen = verified.get(id);
    if (seen !== undefined && seen.key === key && seen.data.equals(data)) {
      verified.delete(id); // most recently used: to the end
      verified.set(id, seen);
      return true;
    }
    const ok = original(...args);
    if (ok === true) {
      if (verified.size >= MAX_VERIFIED) verified.delete(verified.keys().next().value as string);
      verified.set(id, { key, data: Buffer.from(data) });
    }
    return ok;
  };
  crypto.verify = memoized;
}

/** A KeyObject given as itself or as tuf-js's `{ key }` (no padding or other options). */
function keyObjectOf(input: unknown): KeyObject | undefined {
  if (input instanceof crypto.KeyObject) return input;
  if (typeof input !== 'object' || input === null) return undefined;
  const keys = Object.keys(input);
  if (keys.length !== 1 || keys[0] !== 'key') return undefined;
  const { key } = input as { key: unknown };
  return key instanceof crypto.KeyObject ? key : undefined;
}

function derSpki(input: unknown): Buffer | undefined {
  if (typeof input !== 'object' || input === null || Buffer.isBuffer(input)) return undefined;
  const { key, format, type, encoding } = input as PublicKeyInput & { key?: unknown };
  if (format !== 'der' || type !== 'spki' || encoding !== undefined) return undefined;
  if (!Buffer.isBuffer(key) || key.length > MAX_DER_BYTES) return undefined;
  return key;
}
