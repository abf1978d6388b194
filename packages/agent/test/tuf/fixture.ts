/**
 * A TUF image repository and a director built with the protocol's builders (the same ones the server
 * uses), served by a real node:http server on 127.0.0.1. Tests play the server — honest or attacker —
 * by writing whatever files they like, signed by whatever keys they hold.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import {
  generateEd25519,
  memorySigner,
  metaFileFor,
  newRoot,
  newSnapshot,
  newTargets,
  newTimestamp,
  parseMetadata,
  releaseTarget,
  serializeMetadata,
  signMetadata,
} from '@flotilla/node-kit';
import type { ReleaseTargetCustom } from '@flotilla/protocol';
import type { RoleKeys, Signer, TopLevelRole } from '@flotilla/node-kit';
import { TargetFile } from 'tuf-js';
import type { MemoryMetadata } from '../../src/tuf/index.js';

export const DAY_MS = 86_400_000;

export function newSigner(): Signer {
  return memorySigner(generateEd25519().privateKeyPem);
}

export function inDays(days: number): Date {
  return new Date(Date.now() + days * DAY_MS);
}

/** Serves `files` (path → bytes); paths in `endless` stream bytes until the client gives up. */
export class FileServer {
  readonly files = new Map<string, Buffer>();
  readonly endless = new Set<string>();
  /** When set, a request without exactly this Authorization header is refused with 401. */
  requireAuthorization: string | null = null;
  /** The Authorization headers of the requests refused with 401, in order. */
  readonly refused: (string | undefined)[] = [];
  /** Each request's path and `x-flotilla-state-version` header, in order. */
  readonly told: { path: string; stateVersion: string | undefined }[] = [];
  #server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      const told = req.headers['x-flotilla-state-version'];
      this.told.push({ path, stateVersion: typeof told === 'string' ? told : undefined });
      if (this.requireAuthorization !== null && req.headers.authorization !== this.requireAuthorization) {
        this.refused.push(req.headers.authorization);
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end('{"error":{"code":"FLT_TOKEN_EXPIRED","message":"the device token has expired"}}');
        return;
      }
      if (this.endless.has(path)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        const block = Buffer.alloc(64 * 1024, 0x20);
        const pump = (): void => {
          while (!res.destroyed && res.write(block));
          if (!res.destroyed) res.once('drain', pump);
        };
        res.on('close', () => res.destroy());
        pump();
        return;
      }
      const body = this.files.get(path);
      if (!body) {
        res
          .writeHead(404, { 'content-type': 'application/json' })
          .end('{"error":{"code":"FLT_NOT_FOUND","message":"no such file"}}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body);
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

export interface RepoKeys {
  root: Signer[];
  targets: Signer[];
  snapshot: Signer;
  timestamp: Signer;
}

/** One TUF repository served under `/<mount>/` (default `/<name>/`) with consistent snapshots. */
export class SimRepo {
  roots: ReturnType<typeof newRoot>[] = [];
  targetsVersion = 0;
  snapshotVersion = 0;
  timestampVersion = 0;
  targets: TargetFile[] = [];

  constructor(
    readonly name: 'image' | 'director',
    readonly server: FileServer,
    public keys: RepoKeys,
    readonly mount: string = name,
  ) {}

  get url(): string {
    return `${this.server.url}/${this.mount}/`;
  }

  roleKeys(): Record<TopLevelRole, RoleKeys> {
    return {
      root: { keys: this.keys.root.map((s) => s.key), threshold: this.keys.root.length },
      targets: { keys: this.keys.targets.map((s) => s.key), threshold: this.keys.targets.length },
      snapshot: { keys: [this.keys.snapshot.key], threshold: 1 },
      timestamp: { keys: [this.keys.timestamp.key], threshold: 1 },
    };
  }

  put(file: string, bytes: Buffer): void {
    this.server.files.set(`/${this.mount}/${file}`, bytes);
  }

  get(file: string): Buffer {
    const bytes = this.server.files.get(`/${this.mount}/${file}`);
    if (!bytes) throw new Error(`no ${file}`);
    return bytes;
  }

  /** Root v(N+1) with the current `keys`, signed by `signers` (default: the new root keys). */
  async writeRoot(signers: Signer[] = this.keys.root): Promise<Buffer> {
    const root = newRoot({ version: this.roots.length + 1, expires: inDays(365), roles: this.roleKeys() });
    await signMetadata(root, signers);
    this.roots.push(root);
    const bytes = serializeMetadata(root);
    this.put(`${root.signed.version}.root.json`, bytes);
    this.put('root.json', bytes);
    return bytes;
  }

  async writeTargets(
    opts: { version?: number; signers?: Signer[]; expires?: Date } = {},
  ): Promise<{ version: number; bytes: Buffer }> {
    const version = opts.version ?? ++this.targetsVersion;
    const md = newTargets({ version, expires: opts.expires ?? inDays(90), targets: this.targets });
    await signMetadata(md, opts.signers ?? this.keys.targets);
    const bytes = serializeMetadata(md);
    this.put(`${version}.targets.json`, bytes);
    return { version, bytes };
  }

  async writeSnapshot(
    targets: { version: number; bytes: Buffer },
    opts: { version?: number; signers?: Signer[]; expires?: Date } = {},
  ) {
    const version = opts.version ?? ++this.snapshotVersion;
    const md = newSnapshot({
      version,
      expires: opts.expires ?? inDays(7),
      targetsMeta: metaFileFor(targets.bytes, targets.version),
    });
    await signMetadata(md, opts.signers ?? [this.keys.snapshot]);
    const bytes = serializeMetadata(md);
    this.put(`${version}.snapshot.json`, bytes);
    return { version, bytes };
  }

  async writeTimestamp(
    snapshot: { version: number; bytes: Buffer },
    opts: { version?: number; signers?: Signer[]; expires?: Date } = {},
  ) {
    const version = opts.version ?? ++this.timestampVersion;
    const md = newTimestamp({
      version,
      expires: opts.expires ?? inDays(1),
      snapshotMeta: metaFileFor(snapshot.bytes, snapshot.version),
    });
    await signMetadata(md, opts.signers ?? [this.keys.timestamp]);
    const bytes = serializeMetadata(md);
    this.put('timestamp.json', bytes);
    return { version, bytes };
  }

  /** New targets (with `this.targets`), snapshot and timestamp, as an honest server publishes them. */
  async publish(): Promise<void> {
    const targets = await this.writeTargets();
    const snapshot = await this.writeSnapshot(targets);
    await this.writeTimestamp(snapshot);
  }

  /** New snapshot and timestamp for the current targets (the server's online re-signing). */
  async resignOnline(opts: { timestampExpires?: Date } = {}): Promise<void> {
    const targets = { version: this.targetsVersion, bytes: this.get(`${this.targetsVersion}.targets.json`) };
    const snapshot = await this.writeSnapshot(targets);
    await this.writeTimestamp(snapshot, opts.timestampExpires ? { expires: opts.timestampExpires } : {});
  }
}

/** A release whose root object is `bytes`, served at `/objects/<id>`. */
export function releaseOf(
  server: FileServer,
  custom: Omit<ReleaseTargetCustom, 'rootObject'>,
  bytes: Buffer,
): TargetFile {
  const rootObject = createHash('sha256').update(bytes).digest('hex');
  server.files.set(`/objects/${rootObject}`, bytes);
  return releaseTarget({ ...custom, rootObject }, bytes.length);
}

export interface World {
  server: FileServer;
  image: SimRepo;
  director: SimRepo;
  online: { snapshot: Signer; timestamp: Signer; director: Signer };
  dataDir: string;
  metadataDir: string;
  web1: TargetFile;
  web1Bytes: Buffer;
  close(): Promise<void>;
  /** Trusted metadata in memory instead of `metadataDir` (helpers.ts `inMemory`). */
  memory?: { image: MemoryMetadata; director: MemoryMetadata };
}

/**
 * A served image repository with release web 1.0.0, a director assigning it, and a device data dir.
 * `mounts` serves the repositories elsewhere than `/image/` and `/director/` (e.g. at the agent's
 * `/tuf/image/` and `/tuf/director/<deviceId>/`).
 */
export async function world(mounts: { image?: string; director?: string } = {}): Promise<World> {
  const server = new FileServer();
  await server.start();
  const online = { snapshot: newSigner(), timestamp: newSigner(), director: newSigner() };
  const image = new SimRepo(
    'image',
    server,
    {
      root: [newSigner()],
      targets: [newSigner()],
      snapshot: online.snapshot,
      timestamp: online.timestamp,
    },
    mounts.image,
  );
  const director = new SimRepo(
    'director',
    server,
    {
      root: [online.director],
      targets: [online.director],
      snapshot: online.snapshot,
      timestamp: online.timestamp,
    },
    mounts.director,
  );
  const web1Bytes = Buffer.from(
    JSON.stringify({ type: 'dir', entries: [{ name: 'app.sh', kind: 'file', hash: 'b'.repeat(64) }] }),
  );
  const web1 = releaseOf(
    server,
    { app: 'web', version: '1.0.0', runtime: 'process', config: { command: ['./app.sh'] } },
    web1Bytes,
  );
  await image.writeRoot();
  image.targets = [web1];
  await image.publish();
  await director.writeRoot();
  director.targets = [directorEntry(web1, 'rollout-1')];
  await director.publish();
  const dataDir = await mkdtemp(join(tmpdir(), 'flt-agent-tuf-'));
  return {
    server,
    image,
    director,
    online,
    dataDir,
    metadataDir: join(dataDir, 'tuf'),
    web1,
    web1Bytes,
    async close() {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The director's entry for an image target: same length and hashes, custom plus the rollout. */
export function directorEntry(
  target: TargetFile,
  rollout?: string,
  overrides: Partial<{
    length: number;
    hashes: Record<string, string>;
    custom: Record<string, unknown>;
  }> = {},
): TargetFile {
  const custom = {
    ...target.custom,
    ...(rollout && { rollout }),
    ...overrides.custom,
  };
  return new TargetFile({
    path: target.path,
    length: overrides.length ?? target.length,
    hashes: overrides.hashes ?? { ...target.hashes },
    unrecognizedFields: { custom: custom as never },
  });
}

/** The version of a trusted metadata file the device persisted, or undefined. */
export async function trustedVersion(
  w: World,
  repo: 'image' | 'director',
  role: TopLevelRole,
): Promise<number | undefined> {
  try {
    const bytes = w.memory
      ? w.memory[repo].read(`${role}.json`)
      : await readFile(join(w.metadataDir, repo, `${role}.json`));
    return JSON.parse(bytes.toString('utf8')).signed.version as number;
  } catch {
    return undefined;
  }
}

export { parseMetadata };
