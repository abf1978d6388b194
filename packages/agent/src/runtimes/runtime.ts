/** One interface for every way an app runs; the transaction code does not know which one it drives. */
import type { AppProcessStatus, RuntimeKind } from '@flotilla/protocol';
import type { Readable, Writable } from 'node:stream';
import type { ReleaseSpec } from '../model/release.js';

/** One file of a release tree, opened for reading. */
export interface TreeFile {
  size: number;
  /** Its content in pieces, from the start; read once. */
  pieces(): AsyncIterable<Uint8Array>;
  /**
   * The reader is done with a piece (its bytes are sent on): its memory may hold a later read.
   * Optional for the reader; a piece must not be used after.
   */
  recycle?(piece: Uint8Array): void;
  close(): Promise<void>;
}

/**
 * A release's files read from somewhere else than its directory (the agent's chunk cache, before
 * the tree is staged): paths relative to the tree's root; null where the tree has no such file.
 * `read` verifies each chunk against its hash (FLT_HASH_MISMATCH); the pieces of `open` are checked
 * for size only: the reader verifies the whole (the docker runtime hashes each layer against its
 * diff id, which the signed config names, as it streams).
 */
export interface TreeFiles {
  read(path: string): Promise<Buffer | null>;
  open(path: string): Promise<TreeFile | null>;
  /**
   * Announces reads to come (docker: the engine asked to pull, and not yet asking for the layers
   * it lacks): staging holds its rewrite of the changed files as it does during a read, until the
   * function returned is called. Absent where nothing waits on the reads (files on disk).
   */
  reading?(): () => void;
}

/** Where one app's release lives on disk (docs/updates.md "Disk layout"). */
export interface AppContext {
  app: string;
  release: ReleaseSpec;
  /** `<data-dir>/apps/<app>` */
  appDir: string;
  /** `<data-dir>/apps/<app>/releases/<root>`: the real directory, stable while it runs. */
  releaseDir: string;
  /** For `Runtime.prepare` only: the release's files, read from the cache (not yet staged). */
  files?: TreeFiles;
  /** `<data-dir>/apps/<app>/current`, the symlink the switch renames. */
  currentLink: string;
  /** `<data-dir>/apps/<app>/data`, kept across releases. */
  dataDir: string;
  /** `<data-dir>/apps/<app>/logs` */
  logDir: string;
}

export interface Runtime {
  readonly kind: RuntimeKind;
  /** Checks the release's `config` for this runtime; FLT_VALIDATION listing the problems. */
  validate(release: ReleaseSpec): void;
  start(ctx: AppContext, signal: AbortSignal): Promise<void>;
  /**
   * Begins, ahead of `start`, work that changes nothing that runs (docker: loading the release's
   * images the engine lacks), as soon as the fetch has brought every file of the release into the
   * cache: `ctx.files` reads them there while the stage step writes the tree. The promise resolves
   * once the work is under way; the rest goes on in the background and `start` waits for it. A
   * failure here is only logged: `start` does the work.
   */
  prepare?(ctx: AppContext, signal: AbortSignal): Promise<void>;
  /**
   * An update to `release` begins (its fetch step), before any of its files is there: work that
   * needs none of them may begin (docker: the engine's `docker load` of each image it lacks is
   * opened, so the engine is ready to read when the files come). Never rejects; what it begins is
   * dropped when nothing uses it.
   */
  expect?(release: ReleaseSpec): Promise<void>;
  /** Brings a committed release back up when the agent starts (no update ran). */
  adopt(ctx: AppContext): Promise<void>;
  /** Stops whatever runs for the app, including what a previous agent process left running. Idempotent. */
  stop(app: string, appDir: string): Promise<void>;
  /** The health window; resolves when healthy, throws FLT_HEALTH_CHECK_FAILED with the reason. */
  health(ctx: AppContext, signal: AbortSignal): Promise<void>;
  /**
   * The transaction ended (committed, or rolled back) with `current` running: drop what was kept to
   * undo it (docker: the parked containers); `current` null (nothing of the app runs on this
   * runtime any more): remove all of the app's. Called by the cleanup and rollback steps; idempotent.
   */
  settle?(app: string, current: AppContext | null): Promise<void>;
  /** Stops everything this runtime started (agent shutdown). */
  close(): Promise<void>;
  /** How the app's process stands, for runtimes that supervise one (null: not running here). */
  status?(app: string): AppProcessStatus | null;

  // Operator commands over the control channel (issue 17). Optional: a runtime without them answers
  // FLT_RUNTIME_UNSUPPORTED for that command. `service` names one compose service (docker); a runtime
  // with a single process ignores it or refuses a name it does not know (FLT_NOT_FOUND).

  /** Starts, stops or restarts the app's process or containers, or one service of them. */
  control?(app: string, action: ServiceAction, service: string | undefined): Promise<void>;
  /** Streams log lines (tail, since, follow) until `options.signal` aborts or, without follow, the tail is sent. */
  logs?(app: string, options: LogFollowOptions, onLine: (line: LogLine) => void): Promise<void>;
  /** Runs a command in the app's service (a container), with its stdio carried by the caller. */
  exec?(
    app: string,
    service: string | undefined,
    argv: readonly string[],
    io: ExecIo,
  ): Promise<{ exitCode: number }>;
  /** Each service's state, health, restarts, CPU and memory (docker: each container). */
  services?(app: string): Promise<ServiceStatus[]>;
  /** Where a tunnel to `port` of the app or its service connects, as this agent reaches it. */
  tunnelAddress?(
    app: string,
    service: string | undefined,
    port: number,
  ): Promise<{ host: string; port: number }>;
}

export type ServiceAction = 'start' | 'stop' | 'restart';

export interface LogFollowOptions {
  service?: string;
  /** Lines from the end to send first (default: the runtime's own, e.g. 100). */
  tail?: number;
  /** Only lines written at or after this time (epoch ms). */
  since?: number;
  follow: boolean;
  signal: AbortSignal;
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  /** Epoch ms when written, when the runtime knows it. */
  at?: number;
  service?: string;
  text: string;
}

export interface ExecIo {
  stdin: Readable | null;
  stdout: Writable;
  stderr: Writable;
  signal: AbortSignal;
}

export interface ServiceStatus {
  service: string;
  /** e.g. running, exited, restarting, created */
  state: string;
  health: 'healthy' | 'unhealthy' | 'starting' | 'none';
  restarts: number;
  /** Percent of one CPU, when measured. */
  cpuPercent?: number;
  memoryBytes?: number;
  /** Process runtime: the app's process id. */
  pid?: number;
  /** Docker: the container id (never of a container the agent did not create). */
  containerId?: string;
  image?: string;
  startedAt?: string;
}
