/** A repository pair on an in-memory store with offline keys held by the "CLI" side of the test. */
import {
  generateEd25519,
  memorySigner,
  newRoot,
  nextTargets,
  releaseTarget,
  serializeMetadata,
  signMetadata,
  tufKeyFromPublicKey,
} from '@flotilla/node-kit';
import type { ReleaseTargetCustom } from '@flotilla/protocol';
import type { Signer } from '@flotilla/node-kit';
import type { Metadata, Root, Targets } from '@tufjs/models';
import {
  DirectorRepository,
  expiryPolicy,
  ImageRepository,
  memoryOnlineKeys,
  MemoryMetadataStore,
} from '../../src/tuf/index.js';
import type { OnlineKeys } from '../../src/tuf/index.js';

export const DAY_MS = 86_400_000;

export class TestClock {
  constructor(public current = new Date('2026-01-01T00:00:00Z')) {}
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

export function newSigner(): Signer {
  return memorySigner(generateEd25519().privateKeyPem);
}

export interface Fixture {
  clock: TestClock;
  store: MemoryMetadataStore;
  keys: OnlineKeys;
  image: ImageRepository;
  director: DirectorRepository;
  rootKey: Signer;
  targetsKey: Signer;
}

export function fixture(): Fixture {
  const clock = new TestClock();
  const store = new MemoryMetadataStore();
  const keys = memoryOnlineKeys();
  const policy = expiryPolicy();
  const image = new ImageRepository({ store, keys, policy, clock });
  const director = new DirectorRepository({ store, keys, policy, clock, image });
  return { clock, store, keys, image, director, rootKey: newSigner(), targetsKey: newSigner() };
}

/** Root v1 as `flotilla keys init` builds it: offline root and targets keys, the server's online keys. */
export async function initialRoot(f: Fixture, expiresInMs = 365 * DAY_MS): Promise<Metadata<Root>> {
  const online = f.image.onlinePublicKeys();
  const root = newRoot({
    version: 1,
    expires: new Date(f.clock.now().getTime() + expiresInMs),
    roles: {
      root: { keys: [f.rootKey.key], threshold: 1 },
      targets: { keys: [f.targetsKey.key], threshold: 1 },
      snapshot: { keys: [tufKeyFromPublicKey(online.snapshot)], threshold: 1 },
      timestamp: { keys: [tufKeyFromPublicKey(online.timestamp)], threshold: 1 },
    },
  });
  await signMetadata(root, [f.rootKey]);
  return root;
}

export function release(
  app: string,
  version: string,
  rootObjectChar = 'a',
  extra: Partial<ReleaseTargetCustom> = {},
) {
  return releaseTarget(
    { app, version, runtime: 'files', rootObject: rootObjectChar.repeat(64), ...extra },
    512,
  );
}

/** Targets v(N+1) with `add`, signed by `signers` (the offline targets key by default). */
export async function signedTargets(
  f: Fixture,
  current: Metadata<Targets> | undefined,
  add: ReturnType<typeof release>[],
  opts: { signers?: Signer[]; expiresInMs?: number } = {},
): Promise<{ md: Metadata<Targets>; bytes: Buffer }> {
  const md = nextTargets(current, add, new Date(f.clock.now().getTime() + (opts.expiresInMs ?? 90 * DAY_MS)));
  await signMetadata(md, opts.signers ?? [f.targetsKey]);
  return { md, bytes: serializeMetadata(md) };
}

/** An image repository with root v1 and targets v1 naming `web/1.0.0`. */
export async function initialised(): Promise<Fixture> {
  const f = fixture();
  await f.image.submitRoot(serializeMetadata(await initialRoot(f)));
  await f.image.submitTargets((await signedTargets(f, undefined, [release('web', '1.0.0')])).bytes);
  return f;
}
