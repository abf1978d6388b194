/**
 * tuf-js turns a key's bytes into a Node.js `KeyObject` (`crypto.createPublicKey` on its DER form)
 * for every signature it checks; for thousands of simulated devices that verify the same few keys
 * this costs more than the signature checks themselves. A `KeyObject` is immutable and depends on
 * the key's bytes only, so the simulator keeps the ones it made, by their bytes: every signature
 * is still verified, as on a real device.
 *
 * Installed once per process by the fleet (it replaces `crypto.createPublicKey`, which tuf-js
 * calls through the module object); any other call passes through unchanged. It also replaces
 * `crypto.verify` so that checks by the image repository's keys of identical bytes are done once
 * per process (`shareVerificationsOf`); a director's are always done.
 */
import crypto from 'node:crypto';
import type { KeyObject, PublicKeyInput } from 'node:crypto';

/** Keys kept at most (a fleet's repositories use a handful; the map starts over when full). */
const MAX_KEYS = 256;
/** Larger DER keys (RSA) are rare in TUF metadata and not kept. */
const MAX_DER_BYTES = 256;

let installed = false;

/** Raw ed25519 public keys (hex) whose successful verifications are shared (`shareVerificationsOf`). */
const sharedRaw = new Set<string>();
/** The memoized KeyObjects of those keys. */
const sharedKeys = new WeakSet<KeyObject>();
/** Every memoized KeyObject, by its DER bytes (base64). */
const kept = new Map<string, KeyObject>();
/** An ed25519 SPKI DER is 12 bytes of prefix and the 32-byte key. */
const ED25519_DER_BYTES = 44;

const rawOfDer = (der: Buffer): string | undefined =>
  der.length === ED25519_DER_BYTES ? der.subarray(12).toString('hex') : undefined;

function markIfShared(der: Buffer, key: KeyObject): void {
  const raw = rawOfDer(der);
  if (raw !== undefined && sharedRaw.has(raw)) sharedKeys.add(key);
}

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
      markIfShared(der, key);
    }
    return key;
  };
  crypto.createPublicKey = memoized;
  memoizeSharedVerifications();
}

/**
 * Successful checks kept, by signature: the signed bytes and the key they were checked with.
 * A repository's metadata is a few files: the map starts over when full.
 */
const verified = new Map<string, { key: KeyObject; data: Buffer }>();
const MAX_VERIFIED = 64;

/**
 * The image repository's metadata is the same bytes for every simulated device, and its checks
 * against the same trusted keys come out the same: `crypto.verify` with one of the keys named by
 * `shareVerificationsOf` returns a kept success when the signature, the key and the signed bytes
 * are all identical to one it checked before (bytes compared in full). Anything else (other keys:
 * every director's, a signature not seen, different bytes, a failed check) is verified for real.
 */
function memoizeSharedVerifications(): void {
  type Verify = (...args: unknown[]) => boolean;
  const original = crypto.verify as unknown as Verify;
  const memoized = (...args: unknown[]): boolean => {
    const [algorithm, data, keyInput, signature, callback] = args;
    const key = keyObjectOf(keyInput);
    if (
      callback !== undefined ||
      (algorithm !== undefined && algorithm !== null) ||
      key === undefined ||
      !sharedKeys.has(key) ||
      !Buffer.isBuffer(data) ||
      !Buffer.isBuffer(signature)
    )
      return original(...args);
    const id = signature.toString('base64');
    const seen = verified.get(id);
    if (seen !== undefined && seen.key === key && seen.data.equals(data)) return true;
    const ok = original(...args);
    if (ok === true) {
      if (verified.size >= MAX_VERIFIED) verified.clear();
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

/**
 * Lets the checks by the top-level keys of a repository's root (`rootBytes`) be shared across the
 * simulated devices: for the image repository, whose metadata is identical for every device.
 * Never for a director (each device's own). Keys other than ed25519 in hex are left out.
 */
export function shareVerificationsOf(rootBytes: Uint8Array): void {
  let keys: Record<string, { keytype?: unknown; keyval?: { public?: unknown } }>;
  try {
    const parsed = JSON.parse(Buffer.from(rootBytes).toString('utf8')) as {
      signed?: { keys?: typeof keys };
    };
    keys = parsed.signed?.keys ?? {};
  } catch {
    return;
  }
  for (const key of Object.values(keys)) {
    const hex = key.keyval?.public;
    if (key.keytype !== 'ed25519' || typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex)) continue;
    sharedRaw.add(hex);
  }
  for (const [id, key] of kept) markIfShared(Buffer.from(id, 'base64'), key);
}

function derSpki(input: unknown): Buffer | undefined {
  if (typeof input !== 'object' || input === null || Buffer.isBuffer(input)) return undefined;
  const { key, format, type, encoding } = input as PublicKeyInput & { key?: unknown };
  if (format !== 'der' || type !== 'spki' || encoding !== undefined) return undefined;
  if (!Buffer.isBuffer(key) || key.length > MAX_DER_BYTES) return undefined;
  return key;
}
